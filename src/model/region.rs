//! The one table of the REST API's data centres: each region's domain, its
//! documented backup domain, and how well the vendor's pages confirm it.

use std::fmt;

/// How well the vendor's current REST API overview pages confirm a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// Listed, with its backup domain, on the current overview pages.
    Current,
    /// Listed only on older versions of the overview pages: it may have been withdrawn.
    OlderPagesOnly,
    /// Not found on any vendor page grattr's authors could read; kept for the
    /// configurations that name it, and warned about.
    Unconfirmed,
}

/// A data centre of Tencent Cloud Chat: pick the one where the SDKAppID was created
/// (a wrong one answers that the key or the SDKAppID is not found).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// The name used in `grattr.yaml`.
    pub name: &'static str,
    /// The REST API host.
    pub domain: &'static str,
    /// The documented backup host, for when the main one cannot be reached.
    pub backup: Option<&'static str>,
    /// How well the vendor's pages confirm the region.
    pub confirmation: Confirmation,
}

const fn region(name: &'static str, domain: &'static str, backup: &'static str) -> Region {
    Region { name, domain, backup: Some(backup), confirmation: Confirmation::Current }
}

impl Region {
    /// Every region grattr knows: the current ones first.
    pub const ALL: &'static [Region] = &[
        region("china", "console.tim.qq.com", "adminapi.my-imcloud.com"),
        region("singapore", "adminapisgp.im.qcloud.com", "adminapisgp.my-imcloud.com"),
        region("seoul", "adminapikr.im.qcloud.com", "adminapikr.my-imcloud.com"),
        region("tokyo", "adminapijpn.im.qcloud.com", "adminapijpn.my-imcloud.com"),
        region("frankfurt", "adminapiger.im.qcloud.com", "adminapiger.my-imcloud.com"),
        region("silicon-valley", "adminapiusa.im.qcloud.com", "adminapiusa.my-imcloud.com"),
        region("jakarta", "adminapiidn.im.qcloud.com", "adminapiidn.my-imcloud.com"),
        Region {
            confirmation: Confirmation::OlderPagesOnly,
            ..region("mumbai", "adminapiind.im.qcloud.com", "adminapiind.my-imcloud.com")
        },
        Region {
            name: "riyadh",
            domain: "adminapiksa.im.qcloud.com",
            backup: None,
            confirmation: Confirmation::Unconfirmed,
        },
    ];

    /// The region called `name`, if there is one.
    pub fn named(name: &str) -> Option<Region> {
        Region::ALL.iter().copied().find(|r| r.name == name)
    }

    /// The region whose main HTTPS base URL is `url`, if any.
    pub fn with_base_url(url: &str) -> Option<Region> {
        let url = url.trim_end_matches('/');
        Region::ALL.iter().copied().find(|r| r.base_url() == url)
    }

    /// The HTTPS base URL of the region's REST API.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.domain)
    }

    /// The HTTPS base URL of the region's backup domain, when one is documented.
    pub fn backup_url(&self) -> Option<String> {
        self.backup.map(|backup| format!("https://{backup}"))
    }

    /// A caution about the region, when the vendor's pages do not fully confirm it.
    pub fn caveat(&self) -> Option<&'static str> {
        match self.confirmation {
            Confirmation::Current => None,
            Confirmation::OlderPagesOnly => {
                Some("only older versions of the vendor's REST API pages list this region; it may have been withdrawn")
            }
            Confirmation::Unconfirmed => {
                Some("no vendor page grattr's authors could read lists this region's domain; use endpoint if it fails")
            }
        }
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

    #[test]
    fn backups_and_caveats_follow_the_vendor_pages() {
        let china = Region::named("china").unwrap();
        assert_eq!(china.backup_url().as_deref(), Some("https://adminapi.my-imcloud.com"));
        assert_eq!(Region::with_base_url("https://console.tim.qq.com/"), Some(china));
        assert!(china.caveat().is_none());
        assert!(Region::named("mumbai").unwrap().caveat().unwrap().contains("older"));
        assert!(Region::named("riyadh").unwrap().backup_url().is_none());
        assert!(Region::named("riyadh").unwrap().caveat().is_some());
        for region in Region::ALL.iter().filter(|r| r.confirmation == Confirmation::Current) {
            assert!(region.backup.is_some(), "{region}: the current pages document a backup for each");
        }
    }
}
