//! What is to be placed: a [`Request`] built from a workload spec, and its
//! form compiled against one [`Fleet`] for the duration of a decision.

use yunshu_core::{
    meta::Kind,
    model::{BucketSpec, Constraints, Group, GroupPolicy, InstanceSpec, VolumeSpec},
    resources::{ResourceClass, Resources},
    traits::Trait,
};

use crate::fleet::Fleet;

/// The key of the trait compared as a minimum rather than for presence.
pub const SECURITY_LEVEL: &str = "security-level";

/// A placement request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The kind to create; the foundation's adapter must support it.
    pub kind: Kind,
    /// What it consumes of each class.
    pub resources: Resources,
    /// Traits the foundation must have; `security-level:N` means "at least N".
    pub required_traits: Vec<Trait>,
    /// Traits the foundation must not have (compared literally).
    pub forbidden_traits: Vec<Trait>,
    /// The zone the foundation must offer, if any.
    pub zone: Option<String>,
    /// The region the foundation must be in, if any.
    pub region: Option<String>,
    /// The affinity or spread group, with where its members already are.
    pub group: Option<GroupRequest>,
    /// For a volume to attach: the instance, which it must share a
    /// foundation with.
    pub attach_to: Option<AttachTo>,
}

/// The instance a volume is to be attached to, and where it was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachTo {
    /// The instance's name.
    pub instance: String,
    /// Whether the department has such an instance.
    pub exists: bool,
    /// Its foundation; `None` until it is placed (no foundation fits then).
    pub foundation: Option<String>,
}

/// An attached volume's constraint compiled against a fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attach {
    /// No such instance.
    Missing,
    /// The instance is not placed yet.
    NotPlaced,
    /// The instance's foundation (`None`: not in this fleet).
    On(Option<usize>),
}

/// A group and the foundations its existing members were placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRequest {
    /// The group and its policy.
    pub group: Group,
    /// One foundation name per member already placed (repeats count).
    pub members: Vec<String>,
}

impl Request {
    /// A request for `resources` of `kind` with no constraints.
    pub const fn new(kind: Kind, resources: Resources) -> Self {
        Self {
            kind,
            resources,
            required_traits: Vec::new(),
            forbidden_traits: Vec::new(),
            zone: None,
            region: None,
            group: None,
            attach_to: None,
        }
    }

    /// An instance's request; its group, if any, starts with no members known.
    pub fn instance(spec: &InstanceSpec) -> Self {
        use yunshu_core::model::Charge;
        let mut r = Self::new(Kind::Instance, spec.charge()).with_constraints(&spec.constraints);
        r.group = spec.group.clone().map(|group| GroupRequest {
            group,
            members: Vec::new(),
        });
        r
    }

    /// A volume's request; the foundation of the instance it attaches to,
    /// if any, is added by the caller ([`Request::with_instance`]).
    pub fn volume(spec: &VolumeSpec) -> Self {
        use yunshu_core::model::Charge;
        let mut r = Self::new(Kind::Volume, spec.charge()).with_constraints(&spec.constraints);
        r.attach_to = spec.attach_to.clone().map(|instance| AttachTo {
            instance,
            exists: false,
            foundation: None,
        });
        r
    }

    /// Records whether the instance a volume attaches to exists, and where
    /// it was placed.
    #[must_use]
    pub fn with_instance(mut self, exists: bool, foundation: Option<String>) -> Self {
        if let Some(a) = &mut self.attach_to {
            a.exists = exists;
            a.foundation = foundation;
        }
        self
    }

    /// A bucket's request.
    pub fn bucket(spec: &BucketSpec) -> Self {
        use yunshu_core::model::Charge;
        Self::new(Kind::Bucket, spec.charge()).with_constraints(&spec.constraints)
    }

    /// Takes traits and zone from `c`.
    #[must_use]
    pub fn with_constraints(mut self, c: &Constraints) -> Self {
        self.required_traits.clone_from(&c.required_traits);
        self.forbidden_traits.clone_from(&c.forbidden_traits);
        self.zone.clone_from(&c.zone);
        self
    }

    /// Records the foundations the group's existing members are on.
    #[must_use]
    pub fn with_group_members(mut self, members: impl IntoIterator<Item = String>) -> Self {
        if let Some(g) = &mut self.group {
            g.members.extend(members);
        }
        self
    }
}

/// A trait the request names, resolved against the fleet's interned traits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TraitRef {
    /// Its id in the fleet; `None` if no foundation has it.
    pub id: Option<u32>,
    /// Its position in the request's list, for the explanation.
    pub index: u32,
}

/// A request compiled against a fleet.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub kind: Kind,
    classes: [(ResourceClass, u64); 6],
    n_classes: usize,
    pub required: Vec<TraitRef>,
    pub forbidden: Vec<TraitRef>,
    pub min_security: Option<u8>,
    /// `Some(None)`: a zone was asked for that no foundation offers.
    pub zone: Option<Option<u32>>,
    /// `Some(None)`: a region was asked for that no foundation is in.
    pub region: Option<Option<u32>>,
    /// Where an attached volume may go.
    pub attach_to: Option<Attach>,
    pub group: Option<GroupPolicy>,
    /// Members per foundation index (empty when the group has none placed).
    pub members: Vec<u32>,
    pub most_members: u32,
}

impl Prepared {
    pub fn new(fleet: &Fleet, r: &Request) -> Self {
        let mut classes = [(ResourceClass::Vcpu, 0); 6];
        let mut n_classes = 0;
        for (slot, pair) in classes.iter_mut().zip(r.resources.iter()) {
            *slot = pair;
            n_classes += 1;
        }
        let resolve = |(i, t): (usize, &Trait)| TraitRef {
            id: fleet.traits.id(t.as_str()),
            index: u32::try_from(i).unwrap_or(u32::MAX),
        };
        let mut min_security = None;
        let mut required = Vec::new();
        for (i, t) in r.required_traits.iter().enumerate() {
            match (t.key(), t.value().and_then(|v| v.parse::<u8>().ok())) {
                (SECURITY_LEVEL, Some(level)) => min_security = min_security.max(Some(level)),
                _ => required.push(resolve((i, t))),
            }
        }
        let forbidden = r.forbidden_traits.iter().enumerate().map(resolve).collect();
        let (mut members, mut most_members) = (Vec::new(), 0);
        if let Some(g) = r.group.as_ref().filter(|g| !g.members.is_empty()) {
            members = vec![0u32; fleet.len()];
            for i in g.members.iter().filter_map(|m| fleet.index_of(m)) {
                members[i] += 1;
                most_members = most_members.max(members[i]);
            }
        }
        Self {
            kind: r.kind,
            classes,
            n_classes,
            required,
            forbidden,
            min_security,
            zone: r.zone.as_deref().map(|z| fleet.zones.id(z)),
            region: r.region.as_deref().map(|z| fleet.regions.id(z)),
            attach_to: r.attach_to.as_ref().map(|a| match &a.foundation {
                Some(f) => Attach::On(fleet.index_of(f)),
                None if a.exists => Attach::NotPlaced,
                None => Attach::Missing,
            }),
            group: r.group.as_ref().map(|g| g.group.policy),
            members,
            most_members,
        }
    }

    /// The requested classes with a non-zero amount, in class order.
    pub fn classes(&self) -> &[(ResourceClass, u64)] {
        &self.classes[..self.n_classes]
    }

    /// How many group members are on foundation `index`.
    pub fn members_on(&self, index: usize) -> u32 {
        self.members.get(index).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use yunshu_core::model::PowerState;

    use super::*;
    use crate::testkit::{F, fleet_of, group, traits};

    #[test]
    fn instance_request_carries_charge_constraints_and_group() {
        let spec = InstanceSpec {
            vcpu: 4,
            memory_mib: 8192,
            disk_gib: 40,
            image: "kylin-v10".into(),
            constraints: Constraints {
                required_traits: traits(&["xinchuang"]),
                forbidden_traits: traits(&["cpu:hygon"]),
                zone: Some("az1".into()),
            },
            group: Some(group(GroupPolicy::AntiAffinity, &[]).group),
            power: PowerState::Running,
        };
        let r = Request::instance(&spec).with_group_members(["a".to_owned()]);
        assert_eq!(r.resources.get(ResourceClass::MemoryMib), 8192);
        assert_eq!(r.required_traits, traits(&["xinchuang"]));
        assert_eq!(r.forbidden_traits, traits(&["cpu:hygon"]));
        assert_eq!(r.zone.as_deref(), Some("az1"));
        assert_eq!(r.group.map(|g| g.members), Some(vec!["a".to_owned()]));
        let v = Request::volume(&VolumeSpec {
            size_gib: 100,
            attach_to: None,
            constraints: Constraints::default(),
        });
        assert_eq!(
            (v.kind, v.resources.get(ResourceClass::VolumeGib)),
            (Kind::Volume, 100)
        );
        assert_eq!(v.attach_to, None);
        let v = Request::volume(&VolumeSpec {
            size_gib: 100,
            attach_to: Some("web-1".into()),
            constraints: Constraints::default(),
        })
        .with_instance(true, Some("a".into()));
        assert_eq!(
            v.attach_to,
            Some(AttachTo {
                instance: "web-1".into(),
                exists: true,
                foundation: Some("a".into())
            })
        );
    }

    #[test]
    fn compiles_traits_zone_and_members_against_the_fleet() {
        let fleet = fleet_of(&[
            F::new("a").traits(&["xinchuang"]).zones(&["az1"]),
            F::new("b"),
        ]);
        let mut r = crate::testkit::vcpus(2);
        r.required_traits = traits(&[
            "security-level:2",
            "xinchuang",
            "cpu:kunpeng",
            "security-level:3",
        ]);
        r.zone = Some("az9".into());
        r.group = Some(group(GroupPolicy::Affinity, &["b", "b", "a", "gone"]));
        let p = Prepared::new(&fleet, &r);
        assert_eq!(p.min_security, Some(3));
        let req: Vec<_> = p
            .required
            .iter()
            .map(|t| (t.id.is_some(), t.index))
            .collect();
        assert_eq!(req, [(true, 1), (false, 2)]);
        assert_eq!(p.zone, Some(None));
        assert_eq!(
            (p.members_on(0), p.members_on(1), p.most_members),
            (1, 2, 2)
        );
        assert_eq!(p.classes(), [(ResourceClass::Vcpu, 2)]);
    }
}
