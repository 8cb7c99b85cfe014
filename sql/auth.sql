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

CREATE OR REPLACE FUNCTION auth.revoke_key(p_id uuid)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE auth.api_keys SET revoked_at = now()
    WHERE id = p_id AND revoked_at IS NULL;
    IF NOT FOUND THEN
        PERFORM ap.raise(404, 'key_not_found', 'no active key has this id',
                         jsonb_build_object('id', p_id));
    END IF;
END
$$;

-- Whether any key exists: with none (and no admin key configured) the server
-- may run open, on loopback only.
CREATE OR REPLACE FUNCTION auth.any_active_key()
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM auth.api_keys WHERE revoked_at IS NULL)
$$;
