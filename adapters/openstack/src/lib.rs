//! The OpenStack adapter: Keystone v3, Nova, Cinder, Glance and Placement
