//! The files Envoy is configured by: the bootstrap and one resource file per xDS
//! resource (LDS, CDS, one EDS per cluster), their JSON, and their atomic replacement.
//! Each resource file sits alone in a watched directory and is replaced by a rename:
//! Envoy ignores a file rewritten in place.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::error::{EnvoyError, io};

/// The listener's name.
const LISTENER: &str = "ingress";
/// A resource file with nothing in it yet.
const EMPTY: &str = r#"{"version_info": "0", "resources": []}"#;
/// The single cluster of the endpoints mode.
pub(super) const ROLLOUT_CLUSTER: &str = "rollout";

/// Writes into `dir` the empty resource files Envoy watches (they must exist before it
/// starts: version 0) and the bootstrap (admin on `admin`, LDS and CDS from those files);
/// returns the bootstrap's path.
pub(super) fn write_bootstrap(dir: &Path, admin: SocketAddr) -> Result<PathBuf, EnvoyError> {
    for sub in ["lds", "cds"] {
        let d = dir.join(sub);
        std::fs::create_dir(&d).map_err(io(format!("creating {sub}/")))?;
        std::fs::write(d.join("resources.json"), EMPTY).map_err(io(format!("writing {sub}/")))?;
    }
    let bootstrap = dir.join("bootstrap.json");
    let text = bootstrap_json(dir, admin).to_string();
    std::fs::write(&bootstrap, text).map_err(io("writing the bootstrap"))?;
    Ok(bootstrap)
}

/// Writes `value` to `dir/sub/resources.json` by an atomic rename, creating `sub` if needed.
pub(super) fn publish(dir: &Path, sub: &str, value: &Value) -> Result<(), EnvoyError> {
    let watched = dir.join(sub);
    std::fs::create_dir_all(&watched).map_err(io(format!("creating {sub}/")))?;
    let tmp = dir.join(format!(".{sub}.tmp"));
    std::fs::write(&tmp, value.to_string()).map_err(io(format!("writing {sub}")))?;
    std::fs::rename(&tmp, watched.join("resources.json"))
        .map_err(io(format!("renaming {sub} into place")))
}

/// A file-based config source for the resource file in `dir/sub`, watched for renames.
fn file_source(dir: &Path, sub: &str) -> Value {
    let watched = dir.join(sub);
    json!({
        "resource_api_version": "V3",
        "path_config_source": {
            "path": watched.join("resources.json").display().to_string(),
            "watched_directory": {"path": watched.display().to_string()},
        },
    })
}

/// The bootstrap: the admin interface on `admin`, listeners and clusters from the files in `dir`.
fn bootstrap_json(dir: &Path, admin: SocketAddr) -> Value {
    json!({
        "node": {"id": "tcp-canary-rehearsal", "cluster": "tcp-canary"},
        "admin": {"address": {"socket_address": {
            "address": admin.ip().to_string(), "port_value": admin.port()}}},
        "dynamic_resources": {
            "lds_config": file_source(dir, "lds"),
            "cds_config": file_source(dir, "cds"),
        },
    })
}

/// A cluster `name` whose endpoints come from its own EDS file.
pub(super) fn cluster_json(dir: &Path, name: &str) -> Value {
    json!({
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": name,
        "type": "EDS",
        "connect_timeout": "2s",
        // Weighted round robin over the endpoints (what their weights mean); in the
        // listener mode every endpoint of a cluster weighs the same.
        "lb_policy": "ROUND_ROBIN",
        "eds_cluster_config": {"eds_config": file_source(dir, &format!("eds-{name}"))},
    })
}

/// The endpoints of cluster `name`, each with its weight when it has one.
pub(super) fn endpoints_json(name: &str, endpoints: &[(SocketAddr, Option<u64>)]) -> Value {
    let lb: Vec<Value> = endpoints
        .iter()
        .map(|(addr, weight)| {
            let mut e = json!({"endpoint": {"address": {"socket_address": {
                "address": addr.ip().to_string(), "port_value": addr.port()}}}});
            if let Some(w) = weight {
                e["load_balancing_weight"] = json!(w);
            }
            e
        })
        .collect();
    json!({
        "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
        "cluster_name": name,
        "endpoints": [{"lb_endpoints": lb}],
    })
}

/// The listener on `addr` whose `tcp_proxy` routes as `route` says (a cluster or
/// weighted clusters).
pub(super) fn listener_json(addr: SocketAddr, route: Value) -> Value {
    let mut tcp = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": LISTENER,
    });
    if let (Some(t), Some(r)) = (tcp.as_object_mut(), route.as_object()) {
        t.extend(r.clone());
    }
    json!({
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": LISTENER,
        "address": {"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.tcp_proxy",
            "typed_config": tcp,
        }]}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_carries_weighted_clusters_like_istio() {
        let route = json!({"weighted_clusters": {"clusters": [
            {"name": "stable", "weight": 80}, {"name": "canary", "weight": 20}]}});
        let l = listener_json(([127, 0, 0, 1], 9).into(), route);
        let tcp = &l["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(tcp["weighted_clusters"]["clusters"][1]["weight"], 20);
        assert_eq!(tcp["stat_prefix"], "ingress");
        assert_eq!(l["address"]["socket_address"]["port_value"], 9);
    }
}
