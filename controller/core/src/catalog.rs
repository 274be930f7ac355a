//! The catalog: the instance sizes and logical images departments may
//! request. Logical images (`kylin-v10`) resolve per CPU architecture to a
//! cloud's real image, so departments never deal with vendor image names.

use serde::{Deserialize, Serialize};

/// An instance size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Size {
    /// Its name, e.g. `c4m8`.
    pub name: String,
    /// Virtual CPUs.
    pub vcpu: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// A human description.
    #[serde(default)]
    pub description: String,
}

/// A logical image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Its logical name, e.g. `kylin-v10`.
    pub name: String,
    /// A human description.
    #[serde(default)]
    pub description: String,
    /// The architectures it exists for (`x86_64`, `aarch64`).
    pub architectures: Vec<String>,
}

/// What departments may request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// Instance sizes.
    pub sizes: Vec<Size>,
    /// Logical images.
    pub images: Vec<Image>,
    /// The largest root disk in GiB.
    pub max_disk_gib: u64,
    /// The largest volume in GiB.
    pub max_volume_gib: u64,
}

impl Default for Catalog {
    fn default() -> Self {
        let size = |name: &str, vcpu, gib: u64| Size {
            name: name.into(),
            vcpu,
            memory_mib: gib * 1024,
            description: format!("{vcpu} vCPU, {gib} GiB"),
        };
        let image = |name: &str, description: &str, arches: &[&str]| Image {
            name: name.into(),
            description: description.into(),
            architectures: arches.iter().map(|a| (*a).to_owned()).collect(),
        };
        Self {
            sizes: vec![
                size("c1m1", 1, 1),
                size("c1m2", 1, 2),
                size("c2m4", 2, 4),
                size("c4m8", 4, 8),
                size("c8m16", 8, 16),
                size("c16m32", 16, 32),
                size("c32m64", 32, 64),
            ],
            images: vec![
                image(
                    "kylin-v10",
                    "Kylin Advanced Server V10",
                    &["x86_64", "aarch64"],
                ),
                image(
                    "openeuler-22.03",
                    "openEuler 22.03 LTS",
                    &["x86_64", "aarch64"],
                ),
                image("uos-20", "UnionTech OS Server 20", &["x86_64", "aarch64"]),
                image("centos-7", "CentOS 7 (legacy x86 workloads)", &["x86_64"]),
            ],
            max_disk_gib: 2048,
            max_volume_gib: 16384,
        }
    }
}

impl Catalog {
    /// The size with exactly this shape.
    pub fn size(&self, vcpu: u32, memory_mib: u64) -> Option<&Size> {
        self.sizes
            .iter()
            .find(|s| s.vcpu == vcpu && s.memory_mib == memory_mib)
    }

    /// The logical image of this name.
    pub fn image(&self, name: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.name == name)
    }
}
