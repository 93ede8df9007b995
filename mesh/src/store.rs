//! The versioned config store: applied resources, published as immutable snapshots.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::config::{Document, Kind, Resource, Snapshot};

/// A resource's identity: kind, namespace (empty for cluster-scoped kinds) and name.
pub type ResourceKey = (Kind, String, String);

/// Thread-safe store of Istio resources. Clones share the same store.
///
/// Readers take [`ConfigStore::snapshot`], a lock-free load of the current [`Snapshot`], or
/// watch for new ones with [`ConfigStore::subscribe`]. Writers are serialised by a mutex, and
/// each write that changes anything publishes one new snapshot with the next version.
#[derive(Clone)]
pub struct ConfigStore {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<Snapshot>,
    state: Mutex<State>,
    sender: watch::Sender<Arc<Snapshot>>,
}

#[derive(Default)]
struct State {
    version: u64,
    /// Ordinal the next new resource gets; never reused, so creation order survives deletes.
    next_created: u64,
    resources: BTreeMap<ResourceKey, Arc<Resource>>,
}

impl Default for ConfigStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ConfigStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snapshot = self.snapshot();
        f.debug_struct("ConfigStore")
            .field("version", &snapshot.version)
            .field("resources", &snapshot.resources.len())
            .finish()
    }
}

impl ConfigStore {
    /// Creates an empty store at version 0.
    pub fn new() -> Self {
        let empty = Arc::new(Snapshot::default());
        let (sender, _) = watch::channel(empty.clone());
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::new(empty),
                state: Mutex::new(State::default()),
                sender,
            }),
        }
    }

    /// Returns the current snapshot. The load is lock-free, so it can run per connection.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.current.load_full()
    }

    /// Returns a receiver that starts at the current snapshot and sees every later one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.inner.sender.subscribe()
    }

    /// Creates or replaces every document as one atomic change and returns the resulting
    /// version.
    ///
    /// A replaced resource keeps its creation order, as Kubernetes keeps `creationTimestamp`.
    /// When the batch changes nothing (every document is already stored as given) the version
    /// stays the same.
    pub fn apply(&self, documents: Vec<Document>) -> u64 {
        let mut state = self.lock();
        let mut changed = false;
        for document in documents {
            let key = key_of(&document);
            let created = match state.resources.get(&key) {
                Some(existing) if is_same(existing, &document) => continue,
                Some(existing) => existing.created,
                None => {
                    state.next_created += 1;
                    state.next_created
                }
            };
            state
                .resources
                .insert(key, Arc::new(document.into_resource(created)));
            changed = true;
        }
        if changed {
            self.publish(&mut state);
        }
        tracing::debug!(version = state.version, changed, "Configuration applied");
        state.version
    }

    /// Removes the resources with the keys of `documents` and returns the resulting version.
    /// Keys that are not stored are skipped, and if none was stored the version stays the same.
    pub fn delete(&self, documents: &[Document]) -> u64 {
        let mut state = self.lock();
        let before = state.resources.len();
        for document in documents {
            state.resources.remove(&key_of(document));
        }
        let removed = before - state.resources.len();
        if removed > 0 {
            self.publish(&mut state);
        }
        tracing::debug!(version = state.version, removed, "Configuration deleted");
        state.version
    }

    /// Makes the store hold exactly `documents`, created in the given order, as one atomic
    /// change; returns the resulting version. A replica uses it to mirror another store
    /// whose snapshot lists resources oldest first, so that "the oldest policy wins" picks
    /// the same resource on both. When nothing differs, the version stays the same.
    pub fn replace(&self, documents: Vec<Document>) -> u64 {
        let mut state = self.lock();
        let unchanged = state.resources.len() == documents.len()
            && documents.iter().all(|document| {
                state
                    .resources
                    .get(&key_of(document))
                    .is_some_and(|stored| is_same(stored, document))
            })
            && is_in_creation_order(&state.resources, &documents);
        if unchanged {
            return state.version;
        }
        let mut resources = BTreeMap::new();
        for document in documents {
            state.next_created += 1;
            let created = state.next_created;
            resources.insert(key_of(&document), Arc::new(document.into_resource(created)));
        }
        state.resources = resources;
        self.publish(&mut state);
        tracing::debug!(version = state.version, "Configuration replaced");
        state.version
    }

    /// Removes every resource and returns the new version (bumped even if the store was
    /// already empty, so watchers see the reset).
    pub fn reset(&self) -> u64 {
        let mut state = self.lock();
        state.resources.clear();
        self.publish(&mut state);
        tracing::debug!(version = state.version, "Configuration reset");
        state.version
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .expect("config store writers never panic while holding the lock")
    }

    /// Bumps the version and publishes the state as a new snapshot. Runs under the lock, so
    /// snapshots are published in version order.
    fn publish(&self, state: &mut State) {
        state.version += 1;
        let mut resources: Vec<Arc<Resource>> = state.resources.values().cloned().collect();
        resources.sort_by_key(|r| r.created);
        let snapshot = Arc::new(Snapshot {
            version: state.version,
            resources,
        });
        self.inner.current.store(snapshot.clone());
        self.inner.sender.send_replace(snapshot);
    }
}

fn key_of(document: &Document) -> ResourceKey {
    (
        document.kind(),
        document.meta.namespace.clone(),
        document.meta.name.clone(),
    )
}

/// True when `documents` lists the stored resources in their creation order.
fn is_in_creation_order(
    resources: &BTreeMap<ResourceKey, Arc<Resource>>,
    documents: &[Document],
) -> bool {
    let created: Vec<u64> = documents
        .iter()
        .filter_map(|d| resources.get(&key_of(d)).map(|r| r.created))
        .collect();
    created.windows(2).all(|pair| pair[0] < pair[1])
}

fn is_same(stored: &Resource, document: &Document) -> bool {
    stored.api_version == document.api_version
        && stored.meta == document.meta
        && stored.spec == document.spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_documents;

    #[test]
    fn replace_is_atomic_and_keeps_order() {
        let store = ConfigStore::new();
        let docs = |names: &[&str]| -> Vec<Document> {
            names
                .iter()
                .flat_map(|name| {
                    parse_documents(
                        &format!(
                            "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata: {{name: {name}, namespace: default}}\nspec: {{mtls: {{mode: STRICT}}}}\n"
                        ),
                        "test.yaml",
                    )
                    .unwrap()
                })
                .collect()
        };
        let watch = store.subscribe();
        let v1 = store.replace(docs(&["a", "b"]));
        assert_eq!(
            store.replace(docs(&["a", "b"])),
            v1,
            "no change, no new version"
        );
        let v2 = store.replace(docs(&["b", "c"]));
        assert_eq!(v2, v1 + 1, "one snapshot per replace");
        let names: Vec<String> = store
            .snapshot()
            .resources
            .iter()
            .map(|r| r.meta.name.clone())
            .collect();
        assert_eq!(names, ["b", "c"], "creation order follows the documents");
        let v3 = store.replace(docs(&["c", "b"]));
        assert_eq!(v3, v2 + 1, "a new order is a change");
        assert!(watch.has_changed().unwrap());
    }

    fn namespace_policy(namespace: &str, mode: &str) -> Vec<Document> {
        let text = format!(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
             metadata: {{name: default, namespace: {namespace}}}\nspec:\n  mtls: {{mode: {mode}}}\n"
        );
        parse_documents(&text, "test").unwrap()
    }

    fn names(snapshot: &Snapshot) -> Vec<String> {
        snapshot
            .resources
            .iter()
            .map(|r| format!("{}/{}@{}", r.meta.namespace, r.meta.name, r.created))
            .collect()
    }

    #[test]
    fn new_store_is_empty() {
        let store = ConfigStore::new();
        let snapshot = store.snapshot();
        assert_eq!(snapshot.version, 0);
        assert!(snapshot.is_empty());
    }

    #[test]
    fn apply_batch_is_one_version() {
        let store = ConfigStore::new();
        let mut batch = namespace_policy("default", "STRICT");
        batch.extend(namespace_policy("foo", "PERMISSIVE"));
        assert_eq!(store.apply(batch), 1);
        let snapshot = store.snapshot();
        assert_eq!(snapshot.version, 1);
        assert_eq!(names(&snapshot), ["default/default@1", "foo/default@2"]);
    }

    #[test]
    fn reapply_keeps_creation_order() {
        let store = ConfigStore::new();
        store.apply(namespace_policy("default", "STRICT"));
        store.apply(namespace_policy("foo", "STRICT"));
        let version = store.apply(namespace_policy("default", "DISABLE"));
        assert_eq!(version, 3);
        let snapshot = store.snapshot();
        assert_eq!(names(&snapshot), ["default/default@1", "foo/default@2"]);
        let (_, spec) = snapshot.peer_authentications().next().unwrap();
        assert_eq!(spec.mode().to_string(), "DISABLE");
    }

    #[test]
    fn identical_apply_keeps_version() {
        let store = ConfigStore::new();
        store.apply(namespace_policy("default", "STRICT"));
        assert_eq!(store.apply(namespace_policy("default", "STRICT")), 1);
        assert_eq!(store.apply(Vec::new()), 1);
    }

    #[test]
    fn delete_removes_by_key() {
        let store = ConfigStore::new();
        store.apply(namespace_policy("default", "STRICT"));
        store.apply(namespace_policy("foo", "STRICT"));
        // The key decides: a different spec under the same key still deletes.
        let version = store.delete(&namespace_policy("default", "DISABLE"));
        assert_eq!(version, 3);
        assert_eq!(names(&store.snapshot()), ["foo/default@2"]);
    }

    #[test]
    fn delete_absent_is_no_change() {
        let store = ConfigStore::new();
        store.apply(namespace_policy("default", "STRICT"));
        assert_eq!(store.delete(&namespace_policy("bar", "STRICT")), 1);
        assert_eq!(store.snapshot().resources.len(), 1);
    }

    #[test]
    fn recreated_resource_is_newest() {
        let store = ConfigStore::new();
        store.apply(namespace_policy("default", "STRICT"));
        store.apply(namespace_policy("foo", "STRICT"));
        store.delete(&namespace_policy("default", "STRICT"));
        store.apply(namespace_policy("default", "STRICT"));
        assert_eq!(
            names(&store.snapshot()),
            ["foo/default@2", "default/default@3"]
        );
    }

    #[test]
    fn reset_drops_everything() {
        let store = ConfigStore::new();
        store.apply(namespace_policy("default", "STRICT"));
        assert_eq!(store.reset(), 2);
        let snapshot = store.snapshot();
        assert!(snapshot.is_empty());
        assert_eq!(snapshot.version, 2);
    }

    #[test]
    fn get_finds_by_key() {
        let store = ConfigStore::new();
        store.apply(namespace_policy("foo", "STRICT"));
        let snapshot = store.snapshot();
        let found = snapshot.get(Kind::PeerAuthentication, "foo", "default");
        assert_eq!(
            found.map(|r| r.qualified_name()),
            Some("default.foo".to_string())
        );
        assert!(snapshot
            .get(Kind::PeerAuthentication, "default", "default")
            .is_none());
        assert!(snapshot
            .get(Kind::AuthorizationPolicy, "foo", "default")
            .is_none());
    }

    #[test]
    fn old_snapshot_is_unchanged() {
        let store = ConfigStore::new();
        store.apply(namespace_policy("default", "STRICT"));
        let before = store.snapshot();
        store.reset();
        assert_eq!(before.version, 1);
        assert_eq!(before.resources.len(), 1);
    }

    #[test]
    fn clones_share_state() {
        let store = ConfigStore::new();
        let clone = store.clone();
        clone.apply(namespace_policy("default", "STRICT"));
        assert_eq!(store.snapshot().version, 1);
    }

    #[tokio::test]
    async fn subscribers_see_changes() {
        let store = ConfigStore::new();
        let mut receiver = store.subscribe();
        assert_eq!(receiver.borrow_and_update().version, 0);

        let writer = store.clone();
        let task = tokio::spawn(async move {
            writer.apply(namespace_policy("default", "STRICT"));
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), receiver.changed())
            .await
            .expect("a change within 5 s")
            .expect("store still open");
        task.await.unwrap();
        let seen = receiver.borrow_and_update().clone();
        assert_eq!(seen.version, 1);
        assert_eq!(seen.resources.len(), 1);
    }

    #[test]
    fn concurrent_applies_get_distinct_versions() {
        let store = ConfigStore::new();
        let threads: Vec<_> = ["a", "b", "c", "d"]
            .into_iter()
            .map(|namespace| {
                let store = store.clone();
                std::thread::spawn(move || store.apply(namespace_policy(namespace, "STRICT")))
            })
            .collect();
        let mut versions: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        versions.sort_unstable();
        assert_eq!(versions, [1, 2, 3, 4]);
        assert_eq!(store.snapshot().resources.len(), 4);
    }
}
