//! The filters: each either passes a foundation or rejects it with a
//! structured [`Reason`] (rendered to text only when someone asks).
//!
//! They run in [`Filter::ALL`] order, cheapest first, and the first rejection
//! is the one reported.

use yunshu_core::{meta::Kind, model::Health, resources::ResourceClass};

use crate::{
    fleet::Candidate,
    request::{Attach, Prepared},
    tenancy::Standing,
};

/// A filter, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Filter {
    /// The department may use the foundation. First, so a foundation the
    /// department may not use is never reported for anything else: what a
    /// department is told stays within the foundations it may see.
    Allowed,
    /// The foundation's adapter can create the requested kind.
    Capability,
    /// Ready, or Degraded when the policy allows it.
    Health,
    /// The requested zone and region, and for an attached volume its
    /// instance's foundation.
    Zone,
    /// Required traits present, forbidden traits absent, security level high enough.
    Traits,
    /// Free capacity and the largest free unit of every requested class. A
    /// class the foundation has no inventory record for, or whose largest
    /// free unit is reported as 0, takes nothing.
    Capacity,
    /// The department's quota on this foundation.
    Quota,
}

impl Filter {
    /// Every filter, in the order they run.
    pub const ALL: [Filter; 7] = [
        Self::Allowed,
        Self::Capability,
        Self::Health,
        Self::Zone,
        Self::Traits,
        Self::Capacity,
        Self::Quota,
    ];

    /// The filter's name as explanations and metrics show it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Capability => "capability",
            Self::Health => "health",
            Self::Allowed => "allowed",
            Self::Zone => "zone",
            Self::Traits => "traits",
            Self::Capacity => "capacity",
            Self::Quota => "quota",
        }
    }
}

/// Why a filter rejected a foundation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The adapter cannot create this kind.
    Unsupported {
        /// The requested kind.
        kind: Kind,
    },
    /// Not Ready (and not an allowed Degraded).
    Unhealthy {
        /// Its health.
        health: Health,
    },
    /// Not in the department's allowed foundations.
    NotAllowed,
    /// The department's view was built for another fleet; rebuild it.
    StaleTenancy,
    /// The requested zone is not offered here.
    ZoneNotOffered,
    /// The foundation is not in the requested region.
    RegionMismatch,
    /// The instance the volume attaches to is on another foundation.
    InstanceElsewhere,
    /// The instance the volume attaches to is not placed yet.
    InstanceNotPlaced,
    /// The department has no instance of the name the volume attaches to.
    InstanceMissing,
    /// A required trait is missing.
    MissingTrait {
        /// Its position in [`Request::required_traits`](crate::Request::required_traits).
        index: u32,
    },
    /// A forbidden trait is present.
    ForbiddenTrait {
        /// Its position in [`Request::forbidden_traits`](crate::Request::forbidden_traits).
        index: u32,
    },
    /// The foundation's security level is below the required one.
    SecurityLevel {
        /// Its level, if it declares one.
        have: Option<u8>,
        /// The required minimum.
        need: u8,
    },
    /// The foundation has no inventory of a requested class.
    NoInventory {
        /// The class.
        class: ResourceClass,
    },
    /// Not enough free in all.
    Insufficient {
        /// The class.
        class: ResourceClass,
        /// Requested.
        requested: u64,
        /// Free.
        free: u64,
    },
    /// Enough free in all, but no single host has enough.
    Fragmented {
        /// The class.
        class: ResourceClass,
        /// Requested.
        requested: u64,
        /// The largest free unit.
        max_unit: u64,
        /// Free in all.
        free: u64,
    },
    /// Over the department's limit on this foundation.
    OverQuota {
        /// The class.
        class: ResourceClass,
        /// Requested.
        requested: u64,
        /// Already used here.
        used: u64,
        /// The limit here.
        limit: u64,
    },
}

impl Reason {
    /// The filter that gives this reason.
    pub const fn filter(&self) -> Filter {
        match self {
            Self::Unsupported { .. } => Filter::Capability,
            Self::Unhealthy { .. } => Filter::Health,
            Self::NotAllowed | Self::StaleTenancy => Filter::Allowed,
            Self::ZoneNotOffered
            | Self::RegionMismatch
            | Self::InstanceElsewhere
            | Self::InstanceNotPlaced
            | Self::InstanceMissing => Filter::Zone,
            Self::MissingTrait { .. }
            | Self::ForbiddenTrait { .. }
            | Self::SecurityLevel { .. } => Filter::Traits,
            Self::NoInventory { .. } | Self::Insufficient { .. } | Self::Fragmented { .. } => {
                Filter::Capacity
            }
            Self::OverQuota { .. } => Filter::Quota,
        }
    }
}

/// Runs every filter in order; the first rejection wins.
#[inline]
pub(crate) fn check(
    c: &Candidate,
    index: usize,
    s: &Standing,
    allow_degraded: bool,
    p: &Prepared,
) -> Result<(), Reason> {
    if !s.allowed {
        return Err(Reason::NotAllowed);
    }
    if !c.supports(p.kind) {
        return Err(Reason::Unsupported { kind: p.kind });
    }
    match c.health {
        Health::Ready => {}
        Health::Degraded if allow_degraded => {}
        health => return Err(Reason::Unhealthy { health }),
    }
    zone(c, p)?;
    match p.attach_to {
        Some(Attach::Missing) => return Err(Reason::InstanceMissing),
        Some(Attach::NotPlaced) => return Err(Reason::InstanceNotPlaced),
        Some(Attach::On(at)) if at != Some(index) => return Err(Reason::InstanceElsewhere),
        _ => {}
    }
    traits(c, p)?;
    capacity(c, p)?;
    quota(s, p)
}

fn zone(c: &Candidate, p: &Prepared) -> Result<(), Reason> {
    if let Some(z) = p.zone
        && !z.is_some_and(|z| c.zones.contains(&z))
    {
        return Err(Reason::ZoneNotOffered);
    }
    match p.region {
        Some(r) if r.is_none() || r != c.region => Err(Reason::RegionMismatch),
        _ => Ok(()),
    }
}

fn traits(c: &Candidate, p: &Prepared) -> Result<(), Reason> {
    if let Some(t) = p
        .required
        .iter()
        .find(|t| !t.id.is_some_and(|id| c.has_trait(id)))
    {
        return Err(Reason::MissingTrait { index: t.index });
    }
    if let Some(need) = p.min_security
        && c.security_level.is_none_or(|have| have < need)
    {
        return Err(Reason::SecurityLevel {
            have: c.security_level,
            need,
        });
    }
    match p
        .forbidden
        .iter()
        .find(|t| t.id.is_some_and(|id| c.has_trait(id)))
    {
        Some(t) => Err(Reason::ForbiddenTrait { index: t.index }),
        None => Ok(()),
    }
}

fn capacity(c: &Candidate, p: &Prepared) -> Result<(), Reason> {
    for &(class, requested) in p.classes() {
        let inv = &c.inventory[class.index()];
        let free = inv.free();
        if !inv.present {
            return Err(Reason::NoInventory { class });
        } else if free < requested {
            return Err(Reason::Insufficient {
                class,
                requested,
                free,
            });
        } else if inv.max_unit < requested {
            return Err(Reason::Fragmented {
                class,
                requested,
                max_unit: inv.max_unit,
                free,
            });
        }
    }
    Ok(())
}

fn quota(s: &Standing, p: &Prepared) -> Result<(), Reason> {
    for &(class, requested) in p.classes() {
        let (used, limit) = (s.used[class.index()], s.limit[class.index()]);
        if used.saturating_add(requested) > limit {
            return Err(Reason::OverQuota {
                class,
                requested,
                used,
                limit,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
