//! The Kubernetes operator: CRD watchers, status writers, events, finalizers and leader election
