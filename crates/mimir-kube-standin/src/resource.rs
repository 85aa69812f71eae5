//! The two resources the stand-in serves, and the names the API server gives them.

/// A resource type the stand-in serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Job,
    Pod,
}

impl Kind {
    /// The resource's group, empty for the core group.
    pub(crate) fn group(self) -> &'static str {
        match self {
            Kind::Job => "batch",
            Kind::Pod => "",
        }
    }

    /// The path segment of the resource: `jobs`, `pods`.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            Kind::Job => "jobs",
            Kind::Pod => "pods",
        }
    }

    /// The kind as objects carry it: `Job`, `Pod`.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Kind::Job => "Job",
            Kind::Pod => "Pod",
        }
    }

    /// `jobs.batch`, `pods`: how the API server names the resource in messages.
    pub(crate) fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_owned(),
            group => format!("{}.{group}", self.plural()),
        }
    }
}
