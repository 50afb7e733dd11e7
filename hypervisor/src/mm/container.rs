//! Containers with quotas, after CertiKOS's MContainer.
//!
//! Every frame handed out is charged to a container. The root container
//! (index 0) is created by [`Mm::init`] with a quota of all managed frames.
//! [`Mm::split`] carves a child's quota out of its parent's: the parent's
//! usage grows by the child's quota, so the quotas of a tree never add up
//! to more than the root's. [`Mm::alloc`] charges one frame to a container
//! and fails with `OutOfQuota` when its usage has reached its quota;
//! [`Mm::free`] refuses a frame the container does not own. [`Mm::destroy`]
//! gives an empty, childless container's quota back to its parent.
use super::frame::{Frame, PhysRange};
use super::frames::{FrameTable, InitReport};
use super::MmError;
use core::fmt;

/// Containers the kernel can have at once (as CertiKOS's NUM_ID).
pub const MAX_CONTAINERS: usize = 64;

/// Names a container: an index into the container table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ContainerId(u16);

impl ContainerId {
    /// The root container, which owns all memory after [`Mm::init`].
    pub const ROOT: ContainerId = ContainerId(0);

    /// The id with index `i` (no check that such a container exists).
    pub const fn from_index(i: usize) -> ContainerId {
        ContainerId(i as u16)
    }

    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// The accounting of one container, as returned by [`Mm::info`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ContainerInfo {
    /// `None` for the root.
    pub parent: Option<ContainerId>,
    /// Frames the container may use, its own plus its children's quotas.
    pub quota: u64,
    /// Frames it holds plus the quotas it gave to children.
    pub usage: u64,
}

#[derive(Clone, Copy)]
struct Slot {
    used: bool,
    parent: u16,
    quota: u64,
    usage: u64,
}

const EMPTY: Slot = Slot { used: false, parent: 0, quota: 0, usage: 0 };

/// The memory manager: the frame table plus the container table.
///
/// `Mm::<WORDS>` covers `64 * WORDS` frames; the kernel's instance is
/// [`super::KernelMm`]. All operations are total: bad input gives an error,
/// never a panic.
pub struct Mm<const WORDS: usize> {
    frames: FrameTable<WORDS>,
    containers: [Slot; MAX_CONTAINERS],
}

impl<const WORDS: usize> Default for Mm<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> Mm<WORDS> {
    /// An uninitialised manager: no frames, no containers.
    pub const fn new() -> Self {
        Mm { frames: FrameTable::new(), containers: [EMPTY; MAX_CONTAINERS] }
    }

    /// Takes over the usable memory (minus the reserved ranges) and gives
    /// all of it to a fresh root container. Forgets any earlier state.
    pub fn init(&mut self, usable: &[PhysRange], reserved: &[PhysRange]) -> InitReport {
        let report = self.frames.init(usable, reserved);
        self.reset_containers(report.managed_frames);
        report
    }

    /// Like [`Self::init`], with the root's quota set explicitly. A quota
    /// above the managed frames overcommits: `alloc` may then fail with
    /// `OutOfMemory` although the quota allows the frame.
    pub fn init_with_root_quota(
        &mut self,
        usable: &[PhysRange],
        reserved: &[PhysRange],
        root_quota: u64,
    ) -> InitReport {
        let report = self.frames.init(usable, reserved);
        self.reset_containers(root_quota);
        report
    }

    fn reset_containers(&mut self, root_quota: u64) {
        self.containers = [EMPTY; MAX_CONTAINERS];
        self.containers[0] = Slot { used: true, parent: 0, quota: root_quota, usage: 0 };
    }

    fn slot(&self, c: ContainerId) -> Result<&Slot, MmError> {
        match self.containers.get(c.index()) {
            Some(s) if s.used => Ok(s),
            _ => Err(MmError::NoSuchContainer),
        }
    }

    /// Creates a child of `parent` with `quota` frames taken from the
    /// parent's unused quota. The child gets the lowest free container id.
    ///
    /// Errors: `NoSuchContainer`, `OutOfQuota` (the parent has fewer than
    /// `quota` unused frames), `TooManyContainers`.
    pub fn split(&mut self, parent: ContainerId, quota: u64) -> Result<ContainerId, MmError> {
        let p = *self.slot(parent)?;
        if p.quota - p.usage < quota {
            return Err(MmError::OutOfQuota);
        }
        let free = self.containers.iter().position(|s| !s.used).ok_or(MmError::TooManyContainers)?;
        self.containers[parent.index()].usage += quota;
        self.containers[free] = Slot { used: true, parent: parent.0, quota, usage: 0 };
        Ok(ContainerId(free as u16))
    }

    /// Ends `c`: its quota goes back to its parent and its id becomes free.
    ///
    /// Errors: `NoSuchContainer`, `InUse` (`c` is the root, holds frames or
    /// has children).
    pub fn destroy(&mut self, c: ContainerId) -> Result<(), MmError> {
        let s = *self.slot(c)?;
        // A child of quota 0 adds nothing to the usage: look for children.
        let has_children = self.containers().any(|k| k != c && self.containers[k.index()].parent == c.0);
        if c == ContainerId::ROOT || s.usage != 0 || has_children {
            return Err(MmError::InUse);
        }
        self.containers[usize::from(s.parent)].usage -= s.quota;
        self.containers[c.index()] = EMPTY;
        Ok(())
    }

    /// Allocates a frame charged to `c`: the lowest free frame.
    ///
    /// Errors: `NoSuchContainer`, `OutOfQuota` (usage has reached quota),
    /// `OutOfMemory` (no free frame; only when quotas overcommit).
    pub fn alloc(&mut self, c: ContainerId) -> Result<Frame, MmError> {
        let s = *self.slot(c)?;
        if s.usage >= s.quota {
            return Err(MmError::OutOfQuota);
        }
        let frame = self.frames.palloc(c.0)?;
        self.containers[c.index()].usage += 1;
        Ok(frame)
    }

    /// Gives back a frame `c` owns.
    ///
    /// Errors: `NoSuchContainer`; `NotOwner` when the frame is not
    /// allocated to `c` (free, unmanaged, or another container's), which is
    /// also logged as a warning since it points at a bug in the caller.
    pub fn free(&mut self, c: ContainerId, frame: Frame) -> Result<(), MmError> {
        self.slot(c)?;
        if self.frames.owner(frame) != Some(c.0) {
            log::warn!("mm: container {c} tried to free frame {frame}, which it does not own");
            return Err(MmError::NotOwner);
        }
        self.frames.pfree(frame)?;
        self.containers[c.index()].usage -= 1;
        Ok(())
    }

    /// Allocates `count` contiguous frames charged to `c`, the first one a
    /// multiple of `align` frames (the lowest such run). Returns the first.
    ///
    /// Errors: `NoSuchContainer`, `BadRun` (`count` or `align` is 0),
    /// `OutOfQuota` (fewer than `count` frames of quota left),
    /// `OutOfMemory` (no such run is free).
    pub fn alloc_run(&mut self, c: ContainerId, count: usize, align: usize) -> Result<Frame, MmError> {
        let s = *self.slot(c)?;
        if count == 0 || align == 0 {
            return Err(MmError::BadRun);
        }
        if s.quota - s.usage < count as u64 {
            return Err(MmError::OutOfQuota);
        }
        let first = self.frames.palloc_run(c.0, count, align)?;
        self.containers[c.index()].usage += count as u64;
        Ok(first)
    }

    /// Gives back `count` frames from `first`, all owned by `c`. On error
    /// nothing changes.
    ///
    /// Errors: `NoSuchContainer`, `BadRun` (`count` is 0), `NotOwner` (some
    /// frame of the run is not `c`'s; also logged as a warning).
    pub fn free_run(&mut self, c: ContainerId, first: Frame, count: usize) -> Result<(), MmError> {
        self.slot(c)?;
        if count == 0 {
            return Err(MmError::BadRun);
        }
        if self.frames.run_owner(first, count) != Some(c.0) {
            log::warn!("mm: container {c} tried to free {count} frames from {first}, which it does not own");
            return Err(MmError::NotOwner);
        }
        self.frames.pfree_run(first, count)?;
        self.containers[c.index()].usage -= count as u64;
        Ok(())
    }

    /// The accounting of `c`.
    pub fn info(&self, c: ContainerId) -> Result<ContainerInfo, MmError> {
        let s = self.slot(c)?;
        Ok(ContainerInfo {
            parent: (c != ContainerId::ROOT).then_some(ContainerId(s.parent)),
            quota: s.quota,
            usage: s.usage,
        })
    }

    /// Frames `c` may still allocate or give to children.
    pub fn remaining(&self, c: ContainerId) -> Result<u64, MmError> {
        let s = self.slot(c)?;
        Ok(s.quota - s.usage)
    }

    /// The container `frame` is allocated to, if any.
    pub fn owner_of(&self, frame: Frame) -> Option<ContainerId> {
        self.frames.owner(frame).map(ContainerId)
    }

    /// The frame table, for statistics.
    pub fn frames(&self) -> &FrameTable<WORDS> {
        &self.frames
    }

    /// Ids of the existing containers, in increasing order.
    pub fn containers(&self) -> impl Iterator<Item = ContainerId> + '_ {
        self.containers.iter().enumerate().filter(|(_, s)| s.used).map(|(i, _)| ContainerId(i as u16))
    }
}
