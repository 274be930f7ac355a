//! Images and networks: resolving a logical image (`kylin-v10`) to the Glance
//! image built for the cloud's architecture, and picking the network a
//! department's server boots on.

use reqwest::Method;
use serde::Deserialize;
use yunshu_core::{Error, Result};

use crate::session::{Call, Scope, Service, Session};

/// The fields of a Glance v2 image the adapter reads; Glance puts custom
/// properties (`os_distro`, `hw_architecture`) at the top level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Image {
    /// Its id.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// `active`, `queued`, …
    #[serde(default)]
    pub status: String,
    /// The OS family (`kylin`, `openeuler`).
    #[serde(default)]
    pub os_distro: Option<String>,
    /// The OS version (`V10`, `22.03`).
    #[serde(default)]
    pub os_version: Option<String>,
    /// The CPU architecture it is built for.
    #[serde(default)]
    pub hw_architecture: Option<String>,
    /// When it was made (RFC 3339), to prefer the newest.
    #[serde(default)]
    pub created_at: String,
}

/// How well `image` matches the logical name, best first: its name, then
/// `<os_distro>-<os_version>`, then `os_distro` alone; `None` when it does not.
fn rank(image: &Image, logical: &str) -> Option<u8> {
    let l = logical.to_ascii_lowercase();
    let name = image.name.as_deref().map(str::to_ascii_lowercase);
    let distro = image.os_distro.as_deref().map(str::to_ascii_lowercase);
    let version = image.os_version.as_deref().map(str::to_ascii_lowercase);
    if name.as_deref() == Some(l.as_str()) {
        Some(0)
    } else if let (Some(d), Some(v)) = (&distro, &version)
        && format!("{d}-{v}") == l
    {
        Some(1)
    } else if distro.as_deref() == Some(l.as_str()) {
        Some(2)
    } else {
        None
    }
}

/// Picks the active image for `logical` built for `arch` (any architecture
/// when `None`, for clouds that label none): best name match first, then the
/// newest. Pure.
pub fn select_image<'a>(
    images: &'a [Image],
    logical: &str,
    arch: Option<&str>,
) -> Option<&'a Image> {
    images
        .iter()
        .filter(|i| {
            i.status == "active" && arch.is_none_or(|a| i.hw_architecture.as_deref() == Some(a))
        })
        .filter_map(|i| rank(i, logical).map(|r| (r, i)))
        .min_by(|(ra, a), (rb, b)| ra.cmp(rb).then_with(|| b.created_at.cmp(&a.created_at)))
        .map(|(_, i)| i)
}

#[derive(Deserialize)]
struct ImagesRoot {
    images: Vec<Image>,
    #[serde(default)]
    next: Option<String>,
}

/// Resolves `logical` on this cloud for `arch`, as seen from `scope` (so
/// private images of other projects are never picked).
pub(crate) async fn resolve_image(
    session: &Session,
    scope: &Scope,
    logical: &str,
    arch: Option<&str>,
) -> Result<Image> {
    let mut images = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..50 {
        let mut call = Call::new(Method::GET, Service::Image, "/v2/images", "list images")
            .query("status", "active")
            .query("limit", "200");
        if let Some(a) = arch {
            call = call.query("hw_architecture", a);
        }
        if let Some(m) = &marker {
            call = call.query("marker", m.clone());
        }
        let page: ImagesRoot = session
            .send(scope, &call)
            .await?
            .json("glance: list images")?;
        marker = page.images.last().map(|i| i.id.clone());
        images.extend(page.images);
        if page.next.is_none() || marker.is_none() {
            break;
        }
    }
    select_image(&images, logical, arch).cloned().ok_or_else(|| {
        Error::invalid(
            "spec.image",
            format!(
                "no active image named `{logical}` (by name, os_distro-os_version or os_distro) \
                 with hw_architecture `{}` on this cloud",
                arch.unwrap_or("<any>")
            ),
        )
    })
}

#[derive(Deserialize)]
struct NetworksRoot {
    networks: Vec<Network>,
}

#[derive(Deserialize)]
struct Network {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
}

/// The first active network `scope` can see (a department project sees its
/// own and shared ones); `Invalid` when there is none.
pub(crate) async fn first_network(session: &Session, scope: &Scope) -> Result<String> {
    let call = Call::new(
        Method::GET,
        Service::Network,
        "/v2.0/networks",
        "list networks",
    );
    let mut nets = session
        .send(scope, &call)
        .await?
        .json::<NetworksRoot>("neutron: list networks")?
        .networks;
    nets.retain(|n| n.status.is_empty() || n.status == "ACTIVE");
    nets.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    nets.into_iter().next().map(|n| n.id).ok_or_else(|| {
        Error::invalid(
            "network",
            "the department's project sees no network on this cloud; create a shared network \
             (or one in the project) for instances to boot on",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str, name: &str, distro: &str, version: &str, arch: &str, created: &str) -> Image {
        Image {
            id: id.into(),
            name: Some(name.into()),
            status: "active".into(),
            os_distro: Some(distro.into()),
            os_version: Some(version.into()),
            hw_architecture: Some(arch.into()),
            created_at: created.into(),
        }
    }

    #[test]
    fn picks_the_image_for_the_architecture() {
        let images = [
            img("x", "kylin-v10", "kylin", "V10", "x86_64", "2024-01-01"),
            img("a", "kylin-v10", "kylin", "V10", "aarch64", "2024-01-01"),
            img(
                "o",
                "openeuler-22.03",
                "openeuler",
                "22.03",
                "aarch64",
                "2024-01-01",
            ),
        ];
        assert_eq!(
            select_image(&images, "kylin-v10", Some("aarch64")).map(|i| i.id.as_str()),
            Some("a")
        );
        assert_eq!(
            select_image(&images, "kylin-v10", Some("x86_64")).map(|i| i.id.as_str()),
            Some("x")
        );
        assert_eq!(
            select_image(&images, "openeuler-22.03", Some("x86_64")),
            None
        );
    }

    #[test]
    fn matches_distro_and_version_and_prefers_names_then_newest() {
        let images = [
            img("old", "kylin-base", "kylin", "V10", "aarch64", "2023-01-01"),
            img(
                "new",
                "kylin-updated",
                "kylin",
                "V10",
                "aarch64",
                "2024-06-01",
            ),
            img("named", "kylin", "other", "1", "aarch64", "2020-01-01"),
        ];
        // `<distro>-<version>`, case-insensitive, newest wins.
        assert_eq!(
            select_image(&images, "Kylin-V10", Some("aarch64")).map(|i| i.id.as_str()),
            Some("new")
        );
        // An exact name beats an os_distro match.
        assert_eq!(
            select_image(&images, "kylin", Some("aarch64")).map(|i| i.id.as_str()),
            Some("named")
        );
    }

    #[test]
    fn skips_inactive_and_unlabelled_images() {
        let mut queued = img("q", "kylin-v10", "kylin", "V10", "aarch64", "2025-01-01");
        queued.status = "queued".into();
        let mut bare = img("b", "kylin-v10", "kylin", "V10", "aarch64", "2025-01-01");
        bare.hw_architecture = None;
        let both = [queued, bare];
        assert_eq!(select_image(&both, "kylin-v10", Some("aarch64")), None);
        assert_eq!(
            select_image(&both, "kylin-v10", None).map(|i| i.id.as_str()),
            Some("b")
        );
    }
}
