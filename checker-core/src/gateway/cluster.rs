//! Istio's cluster names: `outbound|PORT|SUBSET|HOST`, e.g.
//! `outbound|9000|v1|tcp-echo.default.svc.cluster.local`, and `outbound|9000||HOST`
//! for the Service without a subset.

use std::fmt;

use serde::Serialize;

/// An Istio cluster name taken apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IstioCluster {
    /// `outbound` (a gateway's clusters) or `inbound`.
    pub direction: String,
    /// The Service port.
    pub port: u32,
    /// The DestinationRule subset, `None` for the empty field.
    pub subset: Option<String>,
    /// The destination host, usually a Service FQDN (`tcp-echo.default.svc.cluster.local`).
    pub host: String,
}

impl IstioCluster {
    /// Takes `outbound|9000|v1|HOST` apart; `None` when the name is not of that form.
    pub fn parse(name: &str) -> Option<Self> {
        let mut parts = name.split('|');
        let (Some(direction), Some(port), Some(subset), Some(host), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if !matches!(direction, "outbound" | "inbound") || host.is_empty() {
            return None;
        }
        let port = port.parse().ok()?;
        Some(Self {
            direction: direction.to_owned(),
            port,
            subset: (!subset.is_empty()).then(|| subset.to_owned()),
            host: host.to_owned(),
        })
    }

    /// The host's first label: `tcp-echo` for `tcp-echo.default.svc.cluster.local`.
    pub fn short_host(&self) -> &str {
        manifests::model::short_host(&self.host)
    }

    /// The namespace of a Kubernetes Service FQDN (`default` in
    /// `tcp-echo.default.svc.cluster.local`), when the host is one.
    pub fn namespace(&self) -> Option<&str> {
        let mut labels = self.host.split('.');
        let _name = labels.next()?;
        let namespace = labels.next()?;
        (labels.next() == Some("svc")).then_some(namespace)
    }
}

impl fmt::Display for IstioCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}|{}|{}|{}",
            self.direction,
            self.port,
            self.subset.as_deref().unwrap_or(""),
            self.host
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_names_are_taken_apart_and_put_back() {
        let name = "outbound|9000|v1|tcp-echo.default.svc.cluster.local";
        let c = IstioCluster::parse(name).unwrap();
        assert_eq!(c.direction, "outbound");
        assert_eq!(c.port, 9000);
        assert_eq!(c.subset.as_deref(), Some("v1"));
        assert_eq!(c.short_host(), "tcp-echo");
        assert_eq!(c.namespace(), Some("default"));
        assert_eq!(c.to_string(), name);
        let plain =
            IstioCluster::parse("outbound|9000||tcp-echo.default.svc.cluster.local").unwrap();
        assert_eq!(plain.subset, None);
        assert_eq!(
            plain.to_string(),
            "outbound|9000||tcp-echo.default.svc.cluster.local"
        );
    }

    #[test]
    fn other_names_are_not_istio_names() {
        for name in [
            "one",
            "outbound|9000|v1",
            "outbound|x|v1|host",
            "outbound|9000|v1|host|extra",
            "outbound|9000|v1|",
            "sideways|9000|v1|host",
            "BlackHoleCluster",
        ] {
            assert_eq!(IstioCluster::parse(name), None, "{name}");
        }
        assert_eq!(
            IstioCluster::parse("outbound|9000||tcp-echo")
                .unwrap()
                .namespace(),
            None
        );
    }
}
