//! Unit tests for configuration validation.

use super::*;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    load_str(text, Path::new("test.toml"), &[], &|v| {
        (v == "PROVIDER_KEY").then(|| "sk-provider".to_string())
    })
}

const MINIMAL: &str = r#"
[[endpoints]]
id = "openai"
kind = "openai"
base_url = "https://api.openai.com"
[[routes]]
id = "all"
endpoint = "openai"
"#;

#[test]
fn minimal_config_has_defaults() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.server.max_body_bytes, 10 * 1024 * 1024);
    assert_eq!(c.server.unknown_paths, UnknownPaths::Forward);
    assert_eq!(c.routes[0].auth, AuthMode::Passthrough);
    assert_eq!(c.endpoints[0].connect_timeout, Duration::from_secs(5));
}

#[test]
fn unknown_keys_are_errors() {
    let e = load("[server]\nlisten = \"127.0.0.1:1\"\nlistn = \"x\"\n").unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert!(e.0[0].message.contains("unknown field `listn`"), "{}", e);
}

#[test]
fn every_error_is_reported_with_its_field() {
    let text = r#"
[server]
listen = "nope"
unknown_paths = "drop"
[[endpoints]]
id = "a"
kind = "azure"
base_url = "ftp://x"
[[endpoints]]
id = "b"
kind = "openai"
base_url = "http://127.0.0.1:1"
connect_timeout_ms = 0
[[routes]]
id = "r"
endpoint = "missing"
[[routes]]
id = "v"
endpoint = "b"
auth = "virtual"
[[keys]]
id = "k"
sha256 = "xyz"
"#;
    let e = load(text).unwrap_err();
    let fields: Vec<&str> = e.0.iter().map(|x| x.field.as_str()).collect();
    for want in [
        "server.listen",
        "server.unknown_paths",
        "endpoints[0].kind",
        "endpoints[0].base_url",
        "endpoints[1].connect_timeout_ms",
        "routes[0].endpoint",
        "routes[1].auth",
        "keys[0].sha256",
    ] {
        assert!(fields.contains(&want), "missing {want} in {fields:?}");
    }
    assert!(e.0.iter().all(|x| x.file == "test.toml"));
}

#[test]
fn env_overrides_apply_and_are_checked() {
    let env = vec![
        ("PARAPET_LISTEN".to_string(), "127.0.0.1:7000".to_string()),
        ("PARAPET_MAX_BODY_BYTES".to_string(), "12".to_string()),
    ];
    let c = load_str(MINIMAL, Path::new("t.toml"), &env, &|_| None).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:7000");
    assert_eq!(c.server.max_body_bytes, 12);
    let bad = vec![("PARAPET_MAX_BODY_BYTES".to_string(), "ten".to_string())];
    let e = load_str(MINIMAL, Path::new("t.toml"), &bad, &|_| None).unwrap_err();
    assert_eq!(e.0[0].field, "PARAPET_MAX_BODY_BYTES");
}

#[test]
fn virtual_routes_need_keys_and_provider_key() {
    let text =
        format!("{MINIMAL}\n[[routes]]\nid = \"v\"\nendpoint = \"openai\"\nauth = \"virtual\"\n");
    let e = load(&text).unwrap_err();
    let msgs: Vec<String> = e.0.iter().map(|x| x.to_string()).collect();
    assert!(
        msgs.iter().any(|m| m.contains("set api_key_env")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.contains("no [[keys]]")), "{msgs:?}");

    let ok = r#"
[[endpoints]]
id = "openai"
kind = "openai"
base_url = "https://api.openai.com"
api_key_env = "PROVIDER_KEY"
[[routes]]
id = "v"
endpoint = "openai"
auth = "virtual"
models = ["gpt-4o*", "o3"]
[[keys]]
id = "team"
sha256 = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
routes = ["v"]
"#;
    let c = load(ok).unwrap();
    assert!(c.endpoints[0].api_key.is_some());
    assert_eq!(format!("{:?}", c.endpoints[0].api_key), "Some(*****)");
    assert!(c
        .match_route("/v1/chat/completions", Some("gpt-4o-mini"))
        .is_some());
    assert!(c.match_route("/v1/chat/completions", Some("o3")).is_some());
    assert!(c
        .match_route("/v1/chat/completions", Some("o3-mini"))
        .is_none());
    assert!(c.match_route("/v1/chat/completions", None).is_none());
}

#[test]
fn shipped_default_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("parapet.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = load_str(&text, &path, &[], &|_| None).unwrap();
    assert!(!c.routes.is_empty());
}
