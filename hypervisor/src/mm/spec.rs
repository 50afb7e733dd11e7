//! Executable specification of the mm layer.
//!
//! Frames are a set of managed frames and a map from allocated frames to
//! their owner; containers are a map from id to (parent, quota, usage).
//! Where the real allocator may choose (which frame, which id), the spec
//! fixes the choice to the lowest candidate, and the implementation is
//! required to make the same choice: refinement by equal results.
use super::{Frame, MmError, PhysRange, FRAME_SIZE, MAX_CONTAINERS, MAX_TAG};
use std::collections::{BTreeMap, BTreeSet};

/// The frame allocator's abstract state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrameSpec {
    /// Frames that are RAM, usable and not reserved.
    pub managed: BTreeSet<Frame>,
    /// Allocated frames and their owner tags (a subset of `managed`).
    pub owner: BTreeMap<Frame, u16>,
}

impl FrameSpec {
    /// The frames of a memory map, by definition: a frame below `capacity`
    /// frames is managed iff it lies wholly inside some usable region and
    /// overlaps no reserved range.
    pub fn from_map(usable: &[PhysRange], reserved: &[PhysRange], capacity: u64) -> FrameSpec {
        let managed = (0..capacity)
            .map(|n| n * FRAME_SIZE)
            .filter(|&a| {
                let b = a + FRAME_SIZE;
                // An empty or inverted range (start >= end, from a broken
                // memory map) covers nothing, usable or reserved.
                usable.iter().any(|u| u.start <= a && b <= u.end)
                    && !reserved.iter().any(|r| r.start < r.end && r.start < b && a < r.end)
            })
            .map(Frame::containing)
            .collect();
        FrameSpec { managed, owner: BTreeMap::new() }
    }

    pub fn free_frames(&self) -> impl Iterator<Item = Frame> + '_ {
        self.managed.iter().copied().filter(|f| !self.owner.contains_key(f))
    }

    /// Allocates the lowest free frame to `tag`.
    pub fn palloc(&mut self, tag: u16) -> Result<Frame, MmError> {
        if tag > MAX_TAG {
            return Err(MmError::BadTag);
        }
        let f = self.free_frames().next().ok_or(MmError::OutOfMemory)?;
        self.owner.insert(f, tag);
        Ok(f)
    }

    /// Allocates the lowest run of `count` free frames whose first frame
    /// number is a multiple of `align`.
    pub fn palloc_run(&mut self, tag: u16, count: usize, align: usize) -> Result<Frame, MmError> {
        if tag > MAX_TAG {
            return Err(MmError::BadTag);
        }
        if count == 0 || align == 0 {
            return Err(MmError::BadRun);
        }
        let free: BTreeSet<Frame> = self.free_frames().collect();
        let first = free
            .iter()
            .map(|f| f.number())
            .filter(|n| n % align as u64 == 0)
            .find(|&n| (n..n + count as u64).all(|m| free.contains(&Frame::from_number(m).unwrap())))
            .ok_or(MmError::OutOfMemory)?;
        for m in first..first + count as u64 {
            self.owner.insert(Frame::from_number(m).unwrap(), tag);
        }
        Ok(Frame::from_number(first).unwrap())
    }

    /// The common owner of a run of allocated frames.
    pub fn run_owner(&self, first: Frame, count: usize) -> Option<u16> {
        let tag = *self.owner.get(&first)?;
        (0..count as u64)
            .all(|i| Frame::from_number(first.number() + i).and_then(|f| self.owner.get(&f).copied()) == Some(tag))
            .then_some(tag)
    }

    /// Frees a run of frames allocated to one tag.
    pub fn pfree_run(&mut self, first: Frame, count: usize) -> Result<u16, MmError> {
        if count == 0 {
            return Err(MmError::BadRun);
        }
        let tag = self.run_owner(first, count).ok_or(MmError::NotAllocated)?;
        for i in 0..count as u64 {
            self.owner.remove(&Frame::from_number(first.number() + i).unwrap());
        }
        Ok(tag)
    }

    /// Frees an allocated frame, returning its tag.
    pub fn pfree(&mut self, f: Frame) -> Result<u16, MmError> {
        self.owner.remove(&f).ok_or(MmError::NotAllocated)
    }
}

/// One container's abstract state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerSpec {
    pub parent: Option<usize>,
    pub quota: u64,
    /// Frames owned plus quotas given to children.
    pub usage: u64,
}

/// The container layer's abstract state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmSpec {
    pub frames: FrameSpec,
    pub containers: BTreeMap<usize, ContainerSpec>,
}

impl MmSpec {
    /// After init: every managed frame free, a root with `root_quota`.
    pub fn new(frames: FrameSpec, root_quota: u64) -> MmSpec {
        let mut containers = BTreeMap::new();
        containers.insert(0, ContainerSpec { parent: None, quota: root_quota, usage: 0 });
        MmSpec { frames, containers }
    }

    pub fn split(&mut self, parent: usize, quota: u64) -> Result<usize, MmError> {
        let p = *self.containers.get(&parent).ok_or(MmError::NoSuchContainer)?;
        if p.quota - p.usage < quota {
            return Err(MmError::OutOfQuota);
        }
        let id = (0..MAX_CONTAINERS).find(|i| !self.containers.contains_key(i)).ok_or(MmError::TooManyContainers)?;
        self.containers.get_mut(&parent).unwrap().usage += quota;
        self.containers.insert(id, ContainerSpec { parent: Some(parent), quota, usage: 0 });
        Ok(id)
    }

    /// Removes an empty, childless container other than the root; its
    /// quota returns to its parent.
    pub fn destroy(&mut self, c: usize) -> Result<(), MmError> {
        let s = *self.containers.get(&c).ok_or(MmError::NoSuchContainer)?;
        let has_children = self.containers.values().any(|k| k.parent == Some(c));
        let Some(parent) = s.parent.filter(|_| s.usage == 0 && !has_children) else {
            return Err(MmError::InUse);
        };
        self.containers.remove(&c);
        self.containers.get_mut(&parent).unwrap().usage -= s.quota;
        Ok(())
    }

    pub fn alloc(&mut self, c: usize) -> Result<Frame, MmError> {
        let s = *self.containers.get(&c).ok_or(MmError::NoSuchContainer)?;
        if s.usage >= s.quota {
            return Err(MmError::OutOfQuota);
        }
        let f = self.frames.palloc(c as u16)?;
        self.containers.get_mut(&c).unwrap().usage += 1;
        Ok(f)
    }

    pub fn alloc_run(&mut self, c: usize, count: usize, align: usize) -> Result<Frame, MmError> {
        let s = *self.containers.get(&c).ok_or(MmError::NoSuchContainer)?;
        if count == 0 || align == 0 {
            return Err(MmError::BadRun);
        }
        if s.quota - s.usage < count as u64 {
            return Err(MmError::OutOfQuota);
        }
        let f = self.frames.palloc_run(c as u16, count, align)?;
        self.containers.get_mut(&c).unwrap().usage += count as u64;
        Ok(f)
    }

    pub fn free_run(&mut self, c: usize, first: Frame, count: usize) -> Result<(), MmError> {
        if !self.containers.contains_key(&c) {
            return Err(MmError::NoSuchContainer);
        }
        if count == 0 {
            return Err(MmError::BadRun);
        }
        if self.frames.run_owner(first, count) != Some(c as u16) {
            return Err(MmError::NotOwner);
        }
        self.frames.pfree_run(first, count)?;
        self.containers.get_mut(&c).unwrap().usage -= count as u64;
        Ok(())
    }

    pub fn free(&mut self, c: usize, f: Frame) -> Result<(), MmError> {
        if !self.containers.contains_key(&c) {
            return Err(MmError::NoSuchContainer);
        }
        if self.frames.owner.get(&f) != Some(&(c as u16)) {
            return Err(MmError::NotOwner);
        }
        self.frames.owner.remove(&f);
        self.containers.get_mut(&c).unwrap().usage -= 1;
        Ok(())
    }
}
