//! One cancellation waiter per worker thread instead of one per device: a device waiting for the run's
//! end keeps a 16-byte [`Cancelled`] future (its task's waker sits in the thread's [`Waiters`] table,
//! 16 bytes more), where `CancellationToken::cancelled()` keeps a 72-byte waiter inside every waiting
//! device's future. One task per worker thread waits on the token and wakes every registered device
//! ([`Waiters::wake_all`]).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio_util::sync::CancellationToken;

/// A slot of the table: a registered waker, or the next free slot.
enum Slot {
    Taken(Waker),
    Free(Option<u32>),
}

/// The wakers of the thread's devices waiting for the run's token, in slots reused once their waiter
/// is dropped.
pub struct Waiters {
    token: CancellationToken,
    inner: RefCell<Table>,
}

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    free: Option<u32>,
}

impl Waiters {
    pub fn new(token: CancellationToken) -> Waiters {
        Waiters {
            token,
            inner: RefCell::default(),
        }
    }

    /// A future that completes once the token is cancelled; it must be polled on this thread, and the
    /// thread must run [`Waiters::wake_all`] once the token is cancelled.
    pub fn cancelled(&self) -> Cancelled<'_> {
        Cancelled {
            waiters: self,
            key: None,
        }
    }

    /// Once the token is cancelled (never before: a waiter then never registers again, so no slot
    /// number is reused): wake every registered waiter and free their slots.
    pub fn wake_all(&self) {
        let slots = {
            let mut t = self.inner.borrow_mut();
            t.free = None;
            std::mem::take(&mut t.slots)
        };
        for slot in slots {
            if let Slot::Taken(w) = slot {
                w.wake();
            }
        }
    }

    /// Waiters registered now.
    #[cfg(test)]
    fn registered(&self) -> usize {
        let t = self.inner.borrow();
        t.slots
            .iter()
            .filter(|s| matches!(s, Slot::Taken(_)))
            .count()
    }

    fn register(&self, key: Option<u32>, waker: &Waker) -> Option<u32> {
        let mut t = self.inner.borrow_mut();
        if let Some(Slot::Taken(w)) = key.and_then(|k| t.slots.get_mut(k as usize)) {
            if !w.will_wake(waker) {
                w.clone_from(waker);
            }
            return key;
        }
        // Not registered, or its slot went with a `wake_all`.
        match t.free {
            Some(k) => {
                let slot = t.slots.get_mut(k as usize)?;
                let Slot::Free(next) = *slot else {
                    return None;
                };
                *slot = Slot::Taken(waker.clone());
                t.free = next;
                Some(k)
            }
            None => {
                let k = u32::try_from(t.slots.len()).ok()?;
                t.slots.push(Slot::Taken(waker.clone()));
                Some(k)
            }
        }
    }

    fn release(&self, key: u32) {
        let mut t = self.inner.borrow_mut();
        let free = t.free;
        if let Some(slot @ Slot::Taken(_)) = t.slots.get_mut(key as usize) {
            *slot = Slot::Free(free);
            t.free = Some(key);
        }
    }
}

/// Completes once the run is cancelled. See [`Waiters::cancelled`].
pub struct Cancelled<'a> {
    waiters: &'a Waiters,
    key: Option<u32>,
}

impl Future for Cancelled<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.waiters.token.is_cancelled() {
            if let Some(k) = self.key.take() {
                self.waiters.release(k);
            }
            return Poll::Ready(());
        }
        self.key = self.waiters.register(self.key, cx.waker());
        if self.key.is_none() {
            // No slot (over 4 billion waiters): poll again soon rather than never wake.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl Drop for Cancelled<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            self.waiters.release(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn waiters_wake_on_cancel_and_free_their_slots() {
        let token = CancellationToken::new();
        let waiters = Waiters::new(token.clone());
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                // A dropped waiter frees its slot.
                {
                    let mut w = Box::pin(waiters.cancelled());
                    assert!(futures_poll_once(w.as_mut()).is_pending());
                    assert_eq!(waiters.registered(), 1);
                }
                assert_eq!(waiters.registered(), 0);
                let a = waiters.cancelled();
                let b = waiters.cancelled();
                let wake = async {
                    tokio::task::yield_now().await;
                    assert_eq!(waiters.registered(), 2);
                    token.cancel();
                    waiters.wake_all();
                };
                tokio::join!(a, b, wake);
                assert_eq!(waiters.registered(), 0);
                // After the cancel a new waiter is ready at once.
                waiters.cancelled().await;
            })
            .await;
    }

    fn futures_poll_once(f: Pin<&mut Cancelled<'_>>) -> Poll<()> {
        let waker = Waker::noop();
        f.poll(&mut Context::from_waker(waker))
    }
}
