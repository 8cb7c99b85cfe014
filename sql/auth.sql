-- API keys. The server hashes the secret (SHA-256 hex) before it reaches SQL.

CREATE OR REPLACE FUNCTION auth.create_key(p_id uuid, p_name text, p_role text,
                                           p_user_id text, p_key_hash text)
RETURNS auth.api_keys LANGUAGE plpgsql AS $$
DECLARE
    v_row auth.api_keys;
BEGIN
    IF p_name IS NULL OR length(p_name) NOT BETWEEN 1 AND 200 THEN
        PERFORM ap.raise(400, 'invalid_name', 'name must be 1-200 characters');
    END IF;
    IF p_role IS NULL OR p_role NOT IN ('admin', 'service', 'reader') THEN
        PERFORM ap.raise(400, 'invalid_role', 'role must be admin, service or reader',
                         jsonb_build_object('role', p_role));
    END IF;
    IF p_user_id IS NOT NULL THEN
        PERFORM ap.check_ident('userId', p_user_id);
        -- An admin can mint keys, so a user-bound admin could mint itself an
        -- unbound one: the binding would mean nothing.
        IF p_role = 'admin' THEN
            PERFORM ap.raise(400, 'invalid_user_binding',
                             'an admin key cannot be bound to a user; use a service or reader key',
                             jsonb_build_object('role', p_role));
        END IF;
    END IF;
    INSERT INTO auth.api_keys (id, name, role, user_id, key_hash)
    VALUES (p_id, p_name, p_role, p_user_id, p_key_hash)
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;

-- The key behind a bearer secret, if it exists and is not revoked.
CREATE OR REPLACE FUNCTION auth.lookup_key(p_key_hash text)
RETURNS TABLE (id uuid, role text, user_id text) LANGUAGE sql STABLE AS $$
    SELECT k.id, k.role, k.user_id FROM auth.api_keys k
    WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL
$$;

-- Revokes a key. With p_keep_an_admin (no admin key is configured outside
-- the database), the last active admin key cannot be revoked: nobody could
-- manage keys afterwards, and the server never falls back to open mode.
-- The admin rows are locked first, so two revocations of the last two admin
-- keys queue and the second one sees the first.
CREATE OR REPLACE FUNCTION auth.revoke_key(p_id uuid, p_keep_an_admin boolean DEFAULT true)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_role text;
BEGIN
    IF p_keep_an_admin THEN
        PERFORM 1 FROM auth.api_keys
         WHERE role = 'admin' AND revoked_at IS NULL
         ORDER BY id FOR UPDATE;
    END IF;
    SELECT role INTO v_role FROM auth.api_keys
     WHERE id = p_id AND revoked_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM ap.raise(404, 'key_not_found', 'no active key has this id',
                         jsonb_build_object('id', p_id));
    END IF;
    IF p_keep_an_admin AND v_role = 'admin' AND NOT EXISTS (
           SELECT 1 FROM auth.api_keys
            WHERE role = 'admin' AND revoked_at IS NULL AND id <> p_id) THEN
        PERFORM ap.raise(409, 'last_admin_key',
                         'this is the last active admin key; create another admin key first',
                         jsonb_build_object('id', p_id));
    END IF;
    UPDATE auth.api_keys SET revoked_at = now() WHERE id = p_id;
END
$$;

-- The keys revoked at or after p_since: what a server checks its open
-- WebSockets and event streams against.
CREATE OR REPLACE FUNCTION auth.revoked_since(p_since timestamptz)
RETURNS TABLE (id uuid, revoked_at timestamptz) LANGUAGE sql STABLE AS $$
    SELECT k.id, k.revoked_at FROM auth.api_keys k
     WHERE k.revoked_at >= p_since
$$;

-- Whether a key was ever created (revoked ones count). Open mode exists only
-- until the first key: once one exists the server never runs open again,
-- whatever is revoked later.
CREATE OR REPLACE FUNCTION auth.any_key_created()
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM auth.api_keys)
$$;
