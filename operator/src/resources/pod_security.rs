//! The restricted Pod Security profile the containers of a server pod run with. Pure.

use k8s_openapi::api::core::v1::{Capabilities, SecurityContext};

/// Not root, no privilege escalation, a read-only root, no capabilities: what every
/// container of a server pod gets (the server's own adds its seccomp profile).
pub fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}
