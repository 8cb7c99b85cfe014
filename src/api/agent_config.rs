//! AgentConfig's twelve fields, listed once. Five bodies carry them: the
//! agent's own config (`AgentConfig`), a new variant (`CreateVariant`), a
//! partial update (`VariantPatch`), clone overrides (`ConfigOverrides`) and
//! a stored config as answered (`ConfigValues`). They differ in the wrapper (`Option` or
//! `MaybeUndefined`), the string type (strict `Text` on input), and whether
//! the validators and field notes are part of their schema, so each is built
//! from the list below rather than by flattening one struct: a flattened
//! struct would carry the same validators and notes into every schema.
//! The rules themselves are enforced again in SQL (agents.normalize_config).

/// Defines a body struct whose fields are `{ extra fields }` followed by the
/// twelve AgentConfig fields, in the API's order, each `wrap<type>`.
/// `documented`: validators and the notes on a field's range; `validated`:
/// validators only; `nullable`: validators, and an explicit null is allowed
/// (it clears the field); `plain`: neither (for answers).
macro_rules! agent_config_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($extra:tt)* }
        config: $mode:ident $wrap:ident<$text:ty>
    ) => {
        $crate::api::agent_config::agent_config_struct! {
            @build [$(#[$meta])* pub struct $name] [$($extra)*] $mode $wrap [$text]
            text {
                model_provider: [max_length = 100000],
                model_name: [max_length = 100000],
                system_prompt: [max_length = 100000],
                user_prompt_template: [max_length = 100000],
                prompt_version: [max_length = 100000],
            }
            float {
                temperature: [minimum(value = "0"), maximum(value = "2")] "0–2.",
            }
            int {
                max_tokens: [minimum(value = "1"), maximum(value = "2147483647")] "≥ 1.",
                context_window: [minimum(value = "0"), maximum(value = "2147483647")],
                input_token_limit: [minimum(value = "0"), maximum(value = "2147483647")],
                token_budget: [minimum(value = "0")],
                timeout_seconds: [minimum(value = "1"), maximum(value = "2147483647")] "≥ 1.",
                max_retries: [minimum(value = "0"), maximum(value = "10")] "0–10.",
            }
        }
    };
    (
        @build [$($head:tt)*] [$($extra:tt)*] documented $wrap:ident [$text:ty]
        text { $($t:ident: [$($tv:tt)*] $($td:literal)?,)* }
        float { $($f:ident: [$($fv:tt)*] $($fd:literal)?,)* }
        int { $($i:ident: [$($iv:tt)*] $($id:literal)?,)* }
    ) => {
        $($head)* {
            $($extra)*
            $($(#[doc = $td])? #[oai(validator($($tv)*))] pub $t: $wrap<$text>,)*
            $($(#[doc = $fd])? #[oai(validator($($fv)*))] pub $f: $wrap<f64>,)*
            $($(#[doc = $id])? #[oai(validator($($iv)*))] pub $i: $wrap<i64>,)*
        }
    };
    (
        @build [$($head:tt)*] [$($extra:tt)*] validated $wrap:ident [$text:ty]
        text { $($t:ident: [$($tv:tt)*] $($td:literal)?,)* }
        float { $($f:ident: [$($fv:tt)*] $($fd:literal)?,)* }
        int { $($i:ident: [$($iv:tt)*] $($id:literal)?,)* }
    ) => {
        $($head)* {
            $($extra)*
            $(#[oai(validator($($tv)*))] pub $t: $wrap<$text>,)*
            $(#[oai(validator($($fv)*))] pub $f: $wrap<f64>,)*
            $(#[oai(validator($($iv)*))] pub $i: $wrap<i64>,)*
        }
    };
    (
        @build [$($head:tt)*] [$($extra:tt)*] nullable $wrap:ident [$text:ty]
        text { $($t:ident: [$($tv:tt)*] $($td:literal)?,)* }
        float { $($f:ident: [$($fv:tt)*] $($fd:literal)?,)* }
        int { $($i:ident: [$($iv:tt)*] $($id:literal)?,)* }
    ) => {
        $($head)* {
            $($extra)*
            $(#[oai(nullable, validator($($tv)*))] pub $t: $wrap<$text>,)*
            $(#[oai(nullable, validator($($fv)*))] pub $f: $wrap<f64>,)*
            $(#[oai(nullable, validator($($iv)*))] pub $i: $wrap<i64>,)*
        }
    };
    (
        @build [$($head:tt)*] [$($extra:tt)*] plain $wrap:ident [$text:ty]
        text { $($t:ident: [$($tv:tt)*] $($td:literal)?,)* }
        float { $($f:ident: [$($fv:tt)*] $($fd:literal)?,)* }
        int { $($i:ident: [$($iv:tt)*] $($id:literal)?,)* }
    ) => {
        $($head)* {
            $($extra)*
            $(pub $t: $wrap<$text>,)*
            $(pub $f: $wrap<f64>,)*
            $(pub $i: $wrap<i64>,)*
        }
    };
}

pub(crate) use agent_config_struct;
