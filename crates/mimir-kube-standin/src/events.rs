//! The watch event log: every change gets the next resourceVersion, is kept for watches that
//! resume from an older one, and is broadcast to the open watch streams.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, WatchEvent};
use k8s_openapi::{Metadata, Resource};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::resource::Kind;

/// How many events an open watch may fall behind before it is closed with 410 Expired.
const BROADCAST_CAPACITY: usize = 65_536;

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, serialized once as the line every watch stream sends.
#[derive(Debug)]
pub(crate) struct Event {
    pub rv: u64,
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `{"type":…,"object":…}` and a newline.
    pub line: Bytes,
}

/// The kept events a watch missed, and a receiver for the ones to come.
pub(crate) type Resumed = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// The global resourceVersion counter and the events kept for resuming watches.
pub(crate) struct EventLog {
    rv: u64,
    kept: VecDeque<Arc<Event>>,
    capacity: usize,
    /// Watches from a resourceVersion older than this answer 410 Expired.
    oldest_resumable: u64,
    tx: broadcast::Sender<Arc<Event>>,
}

impl EventLog {
    pub(crate) fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            rv: 1,
            kept: VecDeque::new(),
            capacity,
            oldest_resumable: 0,
            tx,
        }
    }

    /// The newest resourceVersion.
    pub(crate) fn current(&self) -> u64 {
        self.rv
    }

    /// Gives `obj` the next resourceVersion and records the change.
    pub(crate) fn emit<T>(&mut self, kind: Kind, ty: EventType, obj: &mut T)
    where
        T: Resource + Metadata<Ty = ObjectMeta> + Serialize + Clone,
    {
        self.rv += 1;
        obj.metadata_mut().resource_version = Some(self.rv.to_string());
        let meta = obj.metadata();
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let labels = meta.labels.clone().unwrap_or_default();
        let event = match ty {
            EventType::Added => WatchEvent::Added(obj.clone()),
            EventType::Modified => WatchEvent::Modified(obj.clone()),
            EventType::Deleted => WatchEvent::Deleted(obj.clone()),
        };
        let mut line = serde_json::to_vec(&event).expect("Kubernetes objects serialize");
        line.push(b'\n');
        let event = Arc::new(Event {
            rv: self.rv,
            kind,
            namespace,
            name,
            labels,
            line: Bytes::from(line),
        });
        if self.kept.len() >= self.capacity
            && let Some(dropped) = self.kept.pop_front()
        {
            self.oldest_resumable = dropped.rv;
        }
        if self.capacity > 0 {
            self.kept.push_back(Arc::clone(&event));
        } else {
            self.oldest_resumable = self.rv;
        }
        // No receiver means no open watch: nothing to tell.
        let _ = self.tx.send(event);
    }

    /// The kept events after `rv` and a receiver for every later one, or None when events
    /// after `rv` are no longer kept.
    pub(crate) fn resume(&self, rv: u64) -> Option<Resumed> {
        if rv < self.oldest_resumable {
            return None;
        }
        let start = self.kept.partition_point(|e| e.rv <= rv);
        let missed = self.kept.range(start..).cloned().collect();
        Some((missed, self.tx.subscribe()))
    }

    /// A receiver for every event from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Forgets every kept event: watches resuming from an older resourceVersion get 410.
    pub(crate) fn forget_history(&mut self) {
        self.kept.clear();
        self.oldest_resumable = self.rv;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::Job;

    use super::*;

    fn job(name: &str) -> Job {
        let mut job = Job::default();
        job.metadata.name = Some(name.to_owned());
        job.metadata.namespace = Some("ns".to_owned());
        job
    }

    #[test]
    fn each_change_gets_the_next_resource_version_written_into_the_object() {
        let mut log = EventLog::new(10);
        let mut j = job("a");
        log.emit(Kind::Job, EventType::Added, &mut j);
        assert_eq!(j.metadata.resource_version.as_deref(), Some("2"));
        log.emit(Kind::Job, EventType::Modified, &mut j);
        assert_eq!(log.current(), 3);
        let (missed, _rx) = log.resume(2).unwrap();
        assert_eq!(missed.len(), 1);
        let line: serde_json::Value = serde_json::from_slice(&missed[0].line).unwrap();
        assert_eq!(line["type"], "MODIFIED");
        assert_eq!(line["object"]["metadata"]["resourceVersion"], "3");
        assert!(missed[0].line.ends_with(b"\n"));
    }

    #[test]
    fn resuming_before_the_kept_history_is_refused() {
        let mut log = EventLog::new(2);
        for name in ["a", "b", "c", "d"] {
            log.emit(Kind::Job, EventType::Added, &mut job(name));
        }
        // Kept: rv 4 and 5; rv 3 was dropped, so resuming from 3 still misses nothing.
        assert!(log.resume(2).is_none());
        assert_eq!(log.resume(3).unwrap().0.len(), 2);
        assert_eq!(log.resume(5).unwrap().0.len(), 0);
        log.forget_history();
        assert!(log.resume(4).is_none());
        assert!(log.resume(5).unwrap().0.is_empty());
    }

    #[test]
    fn open_receivers_get_every_later_event() {
        let mut log = EventLog::new(0);
        let mut rx = log.subscribe();
        log.emit(Kind::Pod, EventType::Deleted, &mut job("a"));
        let event = rx.try_recv().unwrap();
        assert_eq!(
            (event.rv, event.kind, event.name.as_str()),
            (2, Kind::Pod, "a")
        );
        assert!(log.resume(1).is_none(), "no history kept");
    }
}
