use std::fmt;

/// A data centre of Tencent Cloud Chat: pick the one where the SDKAppID was created
/// (a wrong one answers 70016/70020). This is the one table of region domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// The name used in `grattr.yaml`.
    pub name: &'static str,
    /// The REST API host.
    pub domain: &'static str,
}

impl Region {
    /// Every documented region.
    pub const ALL: &'static [Region] = &[
        Region { name: "china", domain: "console.tim.qq.com" },
        Region { name: "singapore", domain: "adminapisgp.im.qcloud.com" },
        Region { name: "seoul", domain: "adminapikr.im.qcloud.com" },
        Region { name: "tokyo", domain: "adminapijpn.im.qcloud.com" },
        Region { name: "frankfurt", domain: "adminapiger.im.qcloud.com" },
        Region { name: "mumbai", domain: "adminapiind.im.qcloud.com" },
        Region { name: "silicon-valley", domain: "adminapiusa.im.qcloud.com" },
        Region { name: "jakarta", domain: "adminapiidn.im.qcloud.com" },
        Region { name: "riyadh", domain: "adminapiksa.im.qcloud.com" },
    ];

    /// The region called `name`, if there is one.
    pub fn named(name: &str) -> Option<Region> {
        Region::ALL.iter().copied().find(|r| r.name == name)
    }

    /// The HTTPS base URL of the region's REST API.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.domain)
    }

    /// The region names, comma-separated, for error messages.
    pub fn names() -> String {
        Region::ALL.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_resolves() {
        assert_eq!(Region::named("singapore").unwrap().base_url(), "https://adminapisgp.im.qcloud.com");
        assert!(Region::named("mars").is_none());
        assert_eq!(Region::ALL.len(), 9);
    }
}
