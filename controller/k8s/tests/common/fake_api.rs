//! An in-memory fake of the part of the Kubernetes API the operator uses —
//! the only fake the project accepts, since no API server can be installed
//! here. It is a `tower::Service` the kube `Client` talks to directly.
//!
//! It keeps objects as JSON by collection, namespace and name, with a
//! global resourceVersion; serves get, list, watch (replaying history after
//! the requested resourceVersion, then streaming live changes), create,
//! replace (409 on a stale resourceVersion), merge patch (409 on a stale
//! `metadata.resourceVersion`; status ignored on the main resource),
//! server-side apply of the status subresource, and delete (which only sets
//! `deletionTimestamp` while finalizers remain; an object whose last
//! finalizer goes is removed). Every call is recorded, and the next calls
//! matching a method and path can be made to fail with a status code.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The HTTP method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query string.
    pub query: String,
    /// The Content-Type header.
    pub content_type: String,
    /// The JSON body (Null when empty).
    pub body: Value,
    /// The status code answered.
    pub status: u16,
}

#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    collection: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Debug)]
struct Fault {
    method: Method,
    path_suffix: String,
    code: u16,
    remaining: usize,
}

type Key = (String, String, String);

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: Vec<Change>,
    calls: Vec<Call>,
    faults: Vec<Fault>,
}

/// The fake API server; clones share one state.
#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    changes: broadcast::Sender<Change>,
}

/// Where a path points.
#[derive(Debug, Clone)]
struct Route {
    collection: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let prefix = match *segs.first()? {
        "api" => 2,
        "apis" => 3,
        _ => return None,
    };
    let rest = segs.get(prefix..)?;
    let (namespace, rest) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        (Some(rest[1].to_owned()), &rest[2..])
    } else {
        (None, rest)
    };
    Some(Route {
        collection: format!("{}/{}", segs[..prefix].join("/"), rest.first()?),
        namespace,
        name: rest.get(1).map(|s| (*s).to_owned()),
        sub: rest.get(2).map(|s| (*s).to_owned()),
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

fn full(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed_unsync())
        .expect("a valid response")
}

impl Default for FakeApi {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeApi {
    /// An empty API server.
    pub fn new() -> Self {
        Self {
            state: Arc::default(),
            changes: broadcast::channel(4096).0,
        }
    }

    /// A client talking to this server.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The object at `path` (e.g. `/apis/yunshu.io/v1alpha1/foundations/a`).
    pub fn get(&self, path: &str) -> Option<Value> {
        let r = route(path)?;
        let key = (r.collection, r.namespace.unwrap_or_default(), r.name?);
        self.lock().objects.get(&key).cloned()
    }

    /// Every object of a collection path (all namespaces).
    pub fn list(&self, collection: &str) -> Vec<Value> {
        let Some(r) = route(collection) else {
            return Vec::new();
        };
        self.lock()
            .objects
            .iter()
            .filter(|((c, ns, _), _)| {
                *c == r.collection && r.namespace.as_ref().is_none_or(|n| n == ns)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Creates an object at a collection path, as `kubectl create` would
    /// (the body need not match any Rust type: malformed objects welcome).
    pub fn create(&self, collection: &str, object: Value) -> Value {
        let (code, body) = self.dispatch(Method::POST, collection, "", "application/json", object);
        assert!(code < 300, "create at {collection} failed: {body}");
        body
    }

    /// Merge-patches an object, as `kubectl patch --type merge` would.
    pub fn patch(&self, path: &str, patch: Value) -> Value {
        let (code, body) = self.dispatch(
            Method::PATCH,
            path,
            "",
            "application/merge-patch+json",
            patch,
        );
        assert!(code < 300, "patch of {path} failed: {body}");
        body
    }

    /// Deletes an object, as `kubectl delete` would.
    pub fn delete(&self, path: &str) {
        let (code, body) = self.dispatch(Method::DELETE, path, "", "", Value::Null);
        assert!(code < 300, "delete of {path} failed: {body}");
    }

    /// Makes the next `times` calls of `method` whose path ends with
    /// `path_suffix` fail with `code`.
    pub fn fail_next(&self, method: Method, path_suffix: &str, code: u16, times: usize) {
        self.lock().faults.push(Fault {
            method,
            path_suffix: path_suffix.to_owned(),
            code,
            remaining: times,
        });
    }

    fn record(&self, change: Change, state: &mut State) {
        state.history.push(change.clone());
        let _ = self.changes.send(change);
    }

    /// Stores `object` at `key` with a new resourceVersion and records the change.
    fn commit(&self, state: &mut State, key: Key, mut object: Value, kind: &'static str) -> Value {
        state.rv += 1;
        object["metadata"]["resourceVersion"] = json!(state.rv.to_string());
        let deleting = object["metadata"]["deletionTimestamp"].is_string()
            && object["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty);
        let kind = if deleting { "DELETED" } else { kind };
        if deleting {
            state.objects.remove(&key);
        } else {
            state.objects.insert(key.clone(), object.clone());
        }
        let change = Change {
            rv: state.rv,
            collection: key.0,
            namespace: key.1,
            kind,
            object: object.clone(),
        };
        self.record(change, state);
        object
    }

    /// Handles one request; returns the status code and the JSON answer.
    fn dispatch(
        &self,
        method: Method,
        path: &str,
        query: &str,
        content_type: &str,
        body: Value,
    ) -> (u16, Value) {
        let mut state = self.lock();
        let (code, answer) = self.answer(&mut state, &method, path, query, content_type, &body);
        state.calls.push(Call {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            content_type: content_type.to_owned(),
            body,
            status: code,
        });
        (code, answer)
    }

    fn answer(
        &self,
        state: &mut State,
        method: &Method,
        path: &str,
        query: &str,
        content_type: &str,
        body: &Value,
    ) -> (u16, Value) {
        if let Some(f) = state
            .faults
            .iter_mut()
            .find(|f| f.remaining > 0 && f.method == *method && path.ends_with(&f.path_suffix))
        {
            f.remaining -= 1;
            let reason = match f.code {
                409 => "Conflict",
                404 => "NotFound",
                _ => "InternalError",
            };
            return (f.code, status_body(f.code, reason, "injected by the test"));
        }
        let Some(r) = route(path) else {
            return (404, status_body(404, "NotFound", "no such path"));
        };
        let ns = r.namespace.clone().unwrap_or_default();
        match (method.clone(), r.name.clone()) {
            (Method::GET, Some(name)) => match state.objects.get(&(r.collection, ns, name)) {
                Some(o) => (200, o.clone()),
                None => (404, status_body(404, "NotFound", "not found")),
            },
            (Method::GET, None) => {
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|((c, n, _), _)| {
                        *c == r.collection && r.namespace.as_ref().is_none_or(|x| x == n)
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                let _ = query;
                (
                    200,
                    json!({
                        "apiVersion": "v1", "kind": "List",
                        "metadata": { "resourceVersion": state.rv.to_string() },
                        "items": items,
                    }),
                )
            }
            (Method::POST, None) => {
                let mut object = body.clone();
                let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned) else {
                    return (
                        422,
                        status_body(422, "Invalid", "metadata.name is required"),
                    );
                };
                let key = (r.collection.clone(), ns.clone(), name);
                if state.objects.contains_key(&key) {
                    return (409, status_body(409, "AlreadyExists", "already exists"));
                }
                if r.namespace.is_some() {
                    object["metadata"]["namespace"] = json!(ns);
                }
                object["metadata"]["uid"] = json!(format!("uid-{}", state.rv + 1));
                object["metadata"]["generation"] = json!(1);
                object["metadata"]["creationTimestamp"] = json!(now());
                (201, self.commit(state, key, object, "ADDED"))
            }
            (Method::PUT, Some(name)) => {
                let key = (r.collection.clone(), ns, name);
                let Some(current) = state.objects.get(&key).cloned() else {
                    return (404, status_body(404, "NotFound", "not found"));
                };
                let sent = &body["metadata"]["resourceVersion"];
                if sent.is_string() && *sent != current["metadata"]["resourceVersion"] {
                    return (
                        409,
                        status_body(409, "Conflict", "the object has been modified"),
                    );
                }
                let mut object = body.clone();
                for field in [
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "deletionTimestamp",
                ] {
                    object["metadata"][field] = current["metadata"][field].clone();
                }
                if object["spec"] != current["spec"] {
                    bump_generation(&mut object);
                }
                (200, self.commit(state, key, object, "MODIFIED"))
            }
            (Method::PATCH, Some(name)) => {
                let key = (r.collection.clone(), ns, name);
                let Some(current) = state.objects.get(&key).cloned() else {
                    return (404, status_body(404, "NotFound", "not found"));
                };
                let sent = &body["metadata"]["resourceVersion"];
                if sent.is_string() && *sent != current["metadata"]["resourceVersion"] {
                    return (
                        409,
                        status_body(409, "Conflict", "the object has been modified"),
                    );
                }
                let mut object = current.clone();
                if r.sub.as_deref() == Some("status") {
                    if content_type.starts_with("application/apply-patch") {
                        object["status"] = body["status"].clone();
                    } else {
                        merge(&mut object["status"], &body["status"]);
                    }
                } else {
                    let mut patch = body.clone();
                    if let Some(p) = patch.as_object_mut() {
                        p.remove("status");
                    }
                    merge(&mut object, &patch);
                    if object["spec"] != current["spec"] {
                        bump_generation(&mut object);
                    }
                }
                (200, self.commit(state, key, object, "MODIFIED"))
            }
            (Method::DELETE, Some(name)) => {
                let key = (r.collection.clone(), ns, name);
                let Some(mut object) = state.objects.get(&key).cloned() else {
                    return (404, status_body(404, "NotFound", "not found"));
                };
                if !object["metadata"]["deletionTimestamp"].is_string() {
                    object["metadata"]["deletionTimestamp"] = json!(now());
                }
                (200, self.commit(state, key, object, "MODIFIED"))
            }
            _ => (
                405,
                status_body(405, "MethodNotAllowed", "not supported here"),
            ),
        }
    }

    /// A watch: history after `resourceVersion`, then live changes, as
    /// newline-delimited JSON.
    fn watch(&self, path: &str, query: &str) -> Response<Body> {
        let Some(r) = route(path) else {
            return full(404, &status_body(404, "NotFound", "no such path"));
        };
        let since: u64 = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("resourceVersion="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let matches = move |c: &Change| {
            c.collection == r.collection && r.namespace.as_ref().is_none_or(|n| *n == c.namespace)
        };
        let line = |c: &Change| {
            Bytes::from(format!(
                "{}\n",
                json!({ "type": c.kind, "object": c.object })
            ))
        };
        let mut live = {
            let mut state = self.lock();
            state.calls.push(Call {
                method: Method::GET,
                path: path.to_owned(),
                query: query.to_owned(),
                content_type: String::new(),
                body: Value::Null,
                status: 200,
            });
            for c in state.history.iter().filter(|c| c.rv > since && matches(c)) {
                let _ = tx.send(line(c));
            }
            self.changes.subscribe()
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tx.closed() => return,
                    change = live.recv() => match change {
                        Ok(c) if c.rv > since && matches(&c) => {
                            if tx.send(line(&c)).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(StreamBody::new(stream.boxed()).boxed_unsync())
            .expect("a valid response")
    }
}

fn bump_generation(object: &mut Value) {
    let g = object["metadata"]["generation"].as_i64().unwrap_or(0);
    object["metadata"]["generation"] = json!(g + 1);
}

impl tower_service::Service<Request<kube::client::Body>> for FakeApi {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let path = parts.uri.path().to_owned();
            let query = parts.uri.query().unwrap_or_default().to_owned();
            let content_type = parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let watching = parts.method == Method::GET
                && query
                    .split('&')
                    .any(|kv| kv == "watch=true" || kv == "watch=1");
            if watching {
                return Ok(this.watch(&path, &query));
            }
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let (code, answer) = this.dispatch(parts.method, &path, &query, &content_type, body);
            Ok(full(code, &answer))
        })
    }
}
