//! Executable specifications of the thread queues and the scheduler.
use super::queue::QueueError;
use super::{Chan, CpuId, ThreadError, Tid, MAX_CPUS, MAX_THREADS};
use std::collections::{BTreeMap, VecDeque};
use std::vec::Vec;

/// Queues as lists (CertiKOS: `td_queue := List Z`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub threads: usize,
    pub queues: Vec<VecDeque<usize>>,
}

impl QueueSpec {
    pub fn new(threads: usize, queues: usize) -> Self {
        QueueSpec { threads, queues: vec![VecDeque::new(); queues] }
    }

    fn check(&self, q: usize, t: Option<usize>) -> Result<(), QueueError> {
        if q >= self.queues.len() {
            return Err(QueueError::BadQueue);
        }
        match t {
            Some(t) if t >= self.threads => Err(QueueError::BadThread),
            _ => Ok(()),
        }
    }

    pub fn enqueue(&mut self, q: usize, t: usize) -> Result<(), QueueError> {
        self.check(q, Some(t))?;
        if self.queues.iter().any(|x| x.contains(&t)) {
            return Err(QueueError::AlreadyQueued);
        }
        self.queues[q].push_back(t);
        Ok(())
    }

    /// `dequeue (head :: q') = (q', Some head); dequeue nil = (nil, None)`.
    pub fn dequeue(&mut self, q: usize) -> Result<usize, QueueError> {
        self.check(q, None)?;
        self.queues[q].pop_front().ok_or(QueueError::Empty)
    }

    pub fn remove(&mut self, q: usize, t: usize) -> Result<(), QueueError> {
        self.check(q, Some(t))?;
        let i = self.queues[q].iter().position(|&x| x == t).ok_or(QueueError::NotMember)?;
        self.queues[q].remove(i);
        Ok(())
    }
}

/// A live thread's abstract state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecState {
    Ready,
    Running(CpuId),
    Sleeping(Chan),
}

/// The scheduler: current thread per CPU, the ready queue, the sleepers of
/// each channel in sleep order, and the state and owner of live threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedSpec {
    pub current: Vec<Option<Tid>>,
    pub ready: VecDeque<Tid>,
    pub sleepers: BTreeMap<Chan, VecDeque<Tid>>,
    pub threads: BTreeMap<Tid, (SpecState, u32)>,
}

impl Default for SchedSpec {
    fn default() -> Self {
        SchedSpec {
            current: vec![None; MAX_CPUS],
            ready: VecDeque::new(),
            sleepers: BTreeMap::new(),
            threads: BTreeMap::new(),
        }
    }
}

impl SchedSpec {
    /// The lowest unused thread id.
    fn fresh(&self) -> Result<Tid, ThreadError> {
        (0..MAX_THREADS).map(Tid::from_index).find(|t| !self.threads.contains_key(t)).ok_or(ThreadError::NoFreeThread)
    }

    pub fn current(&self, cpu: CpuId) -> Result<Tid, ThreadError> {
        self.current.get(cpu.0).ok_or(ThreadError::BadCpu)?.ok_or(ThreadError::NoCurrentThread)
    }

    pub fn attach(&mut self, cpu: CpuId, owner: u32) -> Result<Tid, ThreadError> {
        match self.current.get(cpu.0) {
            None => return Err(ThreadError::BadCpu),
            Some(Some(_)) => return Err(ThreadError::CpuBusy),
            Some(None) => {}
        }
        let t = self.fresh()?;
        self.threads.insert(t, (SpecState::Running(cpu), owner));
        self.current[cpu.0] = Some(t);
        Ok(t)
    }

    pub fn detach(&mut self, cpu: CpuId) -> Result<Tid, ThreadError> {
        let t = self.current(cpu)?;
        self.threads.remove(&t);
        self.current[cpu.0] = None;
        Ok(t)
    }

    pub fn spawn(&mut self, owner: u32) -> Result<Tid, ThreadError> {
        let t = self.fresh()?;
        self.threads.insert(t, (SpecState::Ready, owner));
        self.ready.push_back(t);
        Ok(t)
    }

    /// Runs the first ready thread on `cpu` (the caller checked there is one).
    fn run_next(&mut self, cpu: CpuId) -> Tid {
        let to = self.ready.pop_front().unwrap();
        self.threads.get_mut(&to).unwrap().0 = SpecState::Running(cpu);
        self.current[cpu.0] = Some(to);
        to
    }

    pub fn yield_now(&mut self, cpu: CpuId) -> Result<Option<(Tid, Tid)>, ThreadError> {
        let from = self.current(cpu)?;
        if self.ready.is_empty() {
            return Ok(None);
        }
        let to = self.run_next(cpu);
        self.threads.get_mut(&from).unwrap().0 = SpecState::Ready;
        self.ready.push_back(from);
        Ok(Some((from, to)))
    }

    pub fn sleep(&mut self, cpu: CpuId, chan: Chan) -> Result<(Tid, Tid), ThreadError> {
        let from = self.current(cpu)?;
        if self.ready.is_empty() {
            return Err(ThreadError::NothingToRun);
        }
        let to = self.run_next(cpu);
        self.threads.get_mut(&from).unwrap().0 = SpecState::Sleeping(chan);
        self.sleepers.entry(chan).or_default().push_back(from);
        Ok((from, to))
    }

    pub fn wakeup(&mut self, chan: Chan) -> usize {
        let woken = self.sleepers.remove(&chan).unwrap_or_default();
        for &t in &woken {
            self.threads.get_mut(&t).unwrap().0 = SpecState::Ready;
            self.ready.push_back(t);
        }
        woken.len()
    }

    pub fn exit(&mut self, cpu: CpuId) -> Result<(Tid, Tid), ThreadError> {
        let from = self.current(cpu)?;
        if self.ready.is_empty() {
            return Err(ThreadError::NothingToRun);
        }
        let to = self.run_next(cpu);
        self.threads.remove(&from);
        Ok((from, to))
    }
}
