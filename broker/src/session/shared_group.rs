//! A shared subscription's group [MQTT 5 §4.8.2]: its members (sessions)
//! and which of them gets the next message. The routing layer keeps the
//! groups in a tree (`routing/shared.rs`); a delivery remembers its group,
//! so a member that leaves can hand its unfinished messages on.

use std::sync::{Arc, Mutex};

use crate::lock::Locked;
use crate::session::store::{SessionHandle, SubscriberId};
use crate::session::subscription::Grant;

/// One member of a group.
#[derive(Clone)]
pub(crate) struct Member {
    pub session: Arc<SessionHandle>,
    pub grant: Grant,
}

impl Member {
    fn is_connected(&self) -> bool {
        self.session.owner() != 0
    }
}

/// One shared subscription: a group name and a filter, and its members.
pub(crate) struct Group {
    pub name: Box<str>,
    pub filter: Box<str>,
    members: Mutex<Members>,
}

#[derive(Default)]
struct Members {
    list: Vec<Member>,
    /// Where the round robin goes on from.
    next: usize,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "$share/{}/{}", self.name, self.filter)
    }
}

impl Group {
    pub(crate) fn new(name: &str, filter: &str) -> Group {
        Group { name: name.into(), filter: filter.into(), members: Mutex::default() }
    }

    /// Adds `session` with `grant`, or replaces its grant; returns whether
    /// it was a member already.
    pub(crate) fn join(&self, session: &Arc<SessionHandle>, grant: Grant) -> bool {
        let mut m = self.members.locked();
        let member = Member { session: session.clone(), grant };
        match m.list.iter_mut().find(|x| x.session.id() == session.id()) {
            Some(existing) => {
                *existing = member;
                true
            }
            None => {
                m.list.push(member);
                false
            }
        }
    }

    /// Removes member `id`; returns whether it was one, and whether the
    /// group is now empty.
    pub(crate) fn leave(&self, id: SubscriberId) -> (bool, bool) {
        let mut m = self.members.locked();
        let Some(i) = m.list.iter().position(|x| x.session.id() == id) else { return (false, m.list.is_empty()) };
        m.list.remove(i);
        (true, m.list.is_empty())
    }

    /// The member the next message goes to: round robin, connected members
    /// first; `except` is left out (a member that is leaving). `None` when
    /// no member is left, or, with `connected_only`, none is connected.
    pub(crate) fn pick(&self, except: Option<SubscriberId>, connected_only: bool) -> Option<Member> {
        let mut m = self.members.locked();
        let n = m.list.len();
        let start = m.next;
        let candidate = |i: usize| m.list.get((start + i) % n.max(1)).filter(|x| Some(x.session.id()) != except);
        let found = (0..n)
            .find(|&i| candidate(i).is_some_and(Member::is_connected))
            .or_else(|| if connected_only { None } else { (0..n).find(|&i| candidate(i).is_some()) })?;
        let index = (start + found) % n;
        m.next = index + 1;
        m.list.get(index).cloned()
    }
}
