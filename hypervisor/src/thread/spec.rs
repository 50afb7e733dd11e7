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
    /// An idle thread that is not running.
    Idle,
}

/// The scheduler: per CPU the current thread, the ready queue and the idle
/// thread; the sleepers of each channel in sleep order; and the state,
/// owner and CPU of live threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedSpec {
    pub current: Vec<Option<Tid>>,
    pub ready: Vec<VecDeque<Tid>>,
    pub idle: Vec<Option<Tid>>,
    pub sleepers: BTreeMap<Chan, VecDeque<Tid>>,
    pub threads: BTreeMap<Tid, (SpecState, u32, CpuId)>,
}

impl Default for SchedSpec {
    fn default() -> Self {
        SchedSpec {
            current: vec![None; MAX_CPUS],
            ready: vec![VecDeque::new(); MAX_CPUS],
            idle: vec![None; MAX_CPUS],
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

    fn set_state(&mut self, t: Tid, st: SpecState) {
        self.threads.get_mut(&t).unwrap().0 = st;
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
        self.threads.insert(t, (SpecState::Running(cpu), owner, cpu));
        self.current[cpu.0] = Some(t);
        Ok(t)
    }

    pub fn detach(&mut self, cpu: CpuId) -> Result<Tid, ThreadError> {
        let t = self.current(cpu)?;
        self.threads.remove(&t);
        self.current[cpu.0] = None;
        if self.idle[cpu.0] == Some(t) {
            self.idle[cpu.0] = None;
        }
        Ok(t)
    }

    pub fn spawn(&mut self, owner: u32, cpu: CpuId) -> Result<Tid, ThreadError> {
        if cpu.0 >= MAX_CPUS {
            return Err(ThreadError::BadCpu);
        }
        let t = self.fresh()?;
        self.threads.insert(t, (SpecState::Ready, owner, cpu));
        self.ready[cpu.0].push_back(t);
        Ok(t)
    }

    pub fn spawn_idle(&mut self, cpu: CpuId) -> Result<Tid, ThreadError> {
        match self.idle.get(cpu.0) {
            None => return Err(ThreadError::BadCpu),
            Some(Some(_)) => return Err(ThreadError::CpuBusy),
            Some(None) => {}
        }
        let t = self.fresh()?;
        self.threads.insert(t, (SpecState::Idle, 0, cpu));
        self.idle[cpu.0] = Some(t);
        Ok(t)
    }

    pub fn become_idle(&mut self, cpu: CpuId) -> Result<Tid, ThreadError> {
        let t = self.current(cpu)?;
        if self.idle[cpu.0].is_some() {
            return Err(ThreadError::CpuBusy);
        }
        self.idle[cpu.0] = Some(t);
        Ok(t)
    }

    /// The next thread for `cpu`: its first ready thread, else its idle
    /// thread if that is not running.
    fn next(&self, cpu: CpuId) -> Option<Tid> {
        self.ready[cpu.0].front().copied().or_else(|| self.idle[cpu.0].filter(|t| self.threads[t].0 == SpecState::Idle))
    }

    fn run(&mut self, cpu: CpuId, to: Tid) {
        if self.ready[cpu.0].front() == Some(&to) {
            self.ready[cpu.0].pop_front();
        }
        self.set_state(to, SpecState::Running(cpu));
        self.current[cpu.0] = Some(to);
    }

    pub fn yield_now(&mut self, cpu: CpuId) -> Result<Option<(Tid, Tid)>, ThreadError> {
        let from = self.current(cpu)?;
        let Some(&to) = self.ready[cpu.0].front() else { return Ok(None) };
        self.run(cpu, to);
        let home = self.threads[&from].2;
        if self.idle[home.0] == Some(from) {
            self.set_state(from, SpecState::Idle);
        } else {
            self.set_state(from, SpecState::Ready);
            self.ready[home.0].push_back(from);
        }
        Ok(Some((from, to)))
    }

    pub fn sleep(&mut self, cpu: CpuId, chan: Chan) -> Result<(Tid, Tid), ThreadError> {
        let from = self.current(cpu)?;
        if self.idle[cpu.0] == Some(from) {
            return Err(ThreadError::NothingToRun);
        }
        let to = self.next(cpu).ok_or(ThreadError::NothingToRun)?;
        self.run(cpu, to);
        self.set_state(from, SpecState::Sleeping(chan));
        self.sleepers.entry(chan).or_default().push_back(from);
        Ok((from, to))
    }

    pub fn wakeup(&mut self, chan: Chan) -> (usize, u32) {
        let woken = self.sleepers.remove(&chan).unwrap_or_default();
        let mut cpus = 0;
        for &t in &woken {
            let cpu = self.threads[&t].2;
            self.set_state(t, SpecState::Ready);
            self.ready[cpu.0].push_back(t);
            cpus |= 1 << cpu.0;
        }
        (woken.len(), cpus)
    }

    pub fn exit(&mut self, cpu: CpuId) -> Result<(Tid, Tid), ThreadError> {
        let from = self.current(cpu)?;
        if self.idle[cpu.0] == Some(from) {
            return Err(ThreadError::NothingToRun);
        }
        let to = self.next(cpu).ok_or(ThreadError::NothingToRun)?;
        self.run(cpu, to);
        self.threads.remove(&from);
        Ok((from, to))
    }
}
