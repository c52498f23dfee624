//! Model checks of the engine's state machines. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p manyio-engine --release --test loom_engine`.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use manyio_engine::{
    Completion, EventCore, Idle, Parker, Registered, RunEnd, TaskState, Unblock, Wait, WaitQueue,
};

struct NoDriver;
impl Unblock for NoDriver {
    fn unblock(&self) {}
}

/// A producer completing and the waiter aborting: exactly one wins, and a waker registered
/// before completion is always handed back.
#[test]
fn completion_complete_races_abort() {
    loom::model(|| {
        let c: Arc<Completion<u32, u8>> = Arc::new(Completion::new());
        assert_eq!(c.register(1), Registered::Waiting);
        let c2 = c.clone();
        let producer = thread::spawn(move || c2.complete(5));
        let aborted = c.try_abort();
        let produced = producer.join().unwrap();
        match produced {
            Ok(waker) => {
                assert!(!aborted);
                assert_eq!(waker, Some(1));
                assert_eq!(c.take(), Some(5));
            }
            Err(v) => {
                assert!(aborted);
                assert_eq!(v, 5);
            }
        }
    });
}

/// A wake-up racing the end of a step is never lost: the task is enqueued exactly once more.
#[test]
fn task_wake_races_step_end() {
    loom::model(|| {
        let s = Arc::new(TaskState::new_scheduled());
        s.start_step();
        let s2 = s.clone();
        let waker = thread::spawn(move || s2.wake());
        let end = s.end_step();
        let waker_enqueued = waker.join().unwrap();
        let enqueued = usize::from(waker_enqueued) + usize::from(end == RunEnd::Reschedule);
        assert_eq!(enqueued, 1);
    });
}

/// Two wakers at once enqueue a parked task once.
#[test]
fn task_double_wake_enqueues_once() {
    loom::model(|| {
        let s = Arc::new(TaskState::new_scheduled());
        s.start_step();
        assert_eq!(s.end_step(), RunEnd::Parked);
        let s2 = s.clone();
        let t = thread::spawn(move || s2.wake());
        let a = s.wake();
        let b = t.join().unwrap();
        assert!(a ^ b);
    });
}

/// An unpark before or during park always ends the park.
#[test]
fn parker_never_misses_unpark() {
    loom::model(|| {
        let p = Arc::new(Parker::new());
        let p2 = p.clone();
        let t = thread::spawn(move || p2.unpark(&NoDriver));
        p.park();
        t.join().unwrap();
    });
}

/// A worker going to sleep and a producer pushing work: the work is never stranded.
#[test]
fn idle_protocol_never_strands_work() {
    loom::model(|| {
        let idle = Arc::new(Idle::new());
        let parker = Arc::new(Parker::new());
        let queue = Arc::new(Mutex::new(Vec::<u32>::new()));
        let taken = Arc::new(AtomicUsize::new(0));

        let (i2, p2, q2) = (idle.clone(), parker.clone(), queue.clone());
        let producer = thread::spawn(move || {
            q2.lock().unwrap().push(1);
            if let Some(0) = i2.pop_sleeper() {
                p2.unpark(&NoDriver);
            }
        });

        // The worker: look, announce, look again, then sleep until woken.
        loop {
            if let Some(_item) = queue.lock().unwrap().pop() {
                taken.fetch_add(1, Ordering::SeqCst);
                break;
            }
            idle.announce(0);
            if let Some(_item) = queue.lock().unwrap().pop() {
                idle.retract(0);
                taken.fetch_add(1, Ordering::SeqCst);
                break;
            }
            parker.park();
            idle.retract(0);
        }
        producer.join().unwrap();
        assert_eq!(taken.load(Ordering::SeqCst), 1);
    });
}

/// A hand-off to a queue whose only waiter is being cancelled comes back to the producer or
/// reaches the waiter; it is never lost.
#[test]
fn wait_queue_hand_races_cancel() {
    loom::model(|| {
        let q: Arc<WaitQueue<u32, ()>> = Arc::new(WaitQueue::new());
        let (id, slot) = q.push();
        let q2 = q.clone();
        let producer = thread::spawn(move || q2.hand_one(9));
        let aborted = slot.try_abort();
        if aborted {
            q.remove(id);
        }
        let handed = producer.join().unwrap();
        if aborted {
            assert_eq!(handed, Err(9));
        } else {
            assert!(handed.is_ok());
            assert_eq!(slot.take(), Some(9));
        }
    });
}

/// Setting an event while a waiter parks: the waiter is either told it is set or woken.
#[test]
fn event_set_races_wait() {
    loom::model(|| {
        let ev: Arc<EventCore<(), u8>> = Arc::new(EventCore::new());
        let ev2 = ev.clone();
        let setter = thread::spawn(move || ev2.set(|| ()));
        let outcome = match ev.wait() {
            Wait::Ready => None,
            Wait::Park(_, slot) => Some(slot),
        };
        let mut woken = setter.join().unwrap();
        if let Some(slot) = outcome {
            // Registration after set: the slot must already be complete.
            if slot.register(7) == Registered::Waiting {
                woken.push(7);
            }
            assert!(slot.is_done() || woken.contains(&7));
        }
        assert!(ev.is_set());
    });
}

/// The ping-pong bug: a set() that a waiter observed, followed by clear(), must not complete a
/// waiter that parks after the clear.
#[test]
fn event_set_never_wakes_a_wait_started_after_clear() {
    loom::model(|| {
        let ev: Arc<EventCore<(), u8>> = Arc::new(EventCore::new());
        let ev2 = ev.clone();
        let setter = thread::spawn(move || ev2.set(|| ()));
        // Wait until the set is visible, clear it, then start a new wait.
        loop {
            if let Wait::Ready = ev.wait() {
                break;
            }
            loom::thread::yield_now();
        }
        ev.clear();
        let late = match ev.wait() {
            Wait::Park(_, slot) => slot,
            Wait::Ready => panic!("cleared event reported set"),
        };
        setter.join().unwrap();
        assert!(
            late.is_pending(),
            "a set() from before the clear woke a later wait"
        );
    });
}
