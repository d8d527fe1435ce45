//! Nodes in roles for a discovery run: the registry's servers first, then the
//! instances of one service, then its callers (`[cluster.config.discovery]`'s
//! `servers`, `instances`, `callers`), checked the same way for every registry.

/// `Err((field, message))` unless the roles fit a cluster of `nodes`: with
/// `servers` set they add up to it, callers have an instance to call, and the
/// service's name is not empty and does not contain `separator` (the character
/// its registry keys use). `members` names the servers in messages (`"etcd
/// members"`); `servers == 0` means every node is one, with no other role.
pub fn check(
    (servers, instances, callers): (usize, usize, usize),
    nodes: usize,
    service: &str,
    members: &str,
    separator: char,
) -> Result<(), (String, String)> {
    let field = |k: &str| format!("cluster.config.discovery.{k}");
    if servers == 0 && (instances > 0 || callers > 0) {
        return Err((
            field("servers"),
            format!("instances and callers need {members}: set servers"),
        ));
    }
    if servers > 0 && servers + instances + callers != nodes {
        return Err((
            "cluster.nodes".into(),
            format!(
                "{nodes} nodes, but the roles add up to {} ({servers} servers + {instances} \
                 instances + {callers} callers)",
                servers + instances + callers
            ),
        ));
    }
    if callers > 0 && instances == 0 {
        return Err((
            field("callers"),
            format!("callers of service {service:?}, which no instance offers (instances = 0)"),
        ));
    }
    if service.is_empty() || service.contains(separator) {
        return Err((
            field("service"),
            format!("a non-empty name without '{separator}'"),
        ));
    }
    Ok(())
}
