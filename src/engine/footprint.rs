//! What one device holds, in bytes, for the cost bench's idle-memory breakdown (`cargo bench --bench
//! cost`, section a.): the sizes of the device task's future and of its parts, as this build lays them
//! out. The heap blocks a device owns (its task cell, the socket registration, the client id...) are
//! counted by the bench itself, with a counting allocator around a run.

use std::mem::size_of;
use std::rc::Rc;

use super::context::WorkerCtx;
use super::device;
use crate::plan::DeviceRef;

/// One line of the breakdown: what, and its size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub name: &'static str,
    pub bytes: usize,
}

/// The size of the future an async fn returns, without calling it.
fn future_size<F, Fut>(_: F) -> usize
where
    F: FnOnce(Rc<WorkerCtx>, DeviceRef) -> Fut,
{
    size_of::<Fut>()
}

/// The device task's future (all of it lives in the task's heap cell) and the parts of it that are
/// named types; the rest of the future is the async fns' locals.
pub fn device_parts() -> Vec<Part> {
    let mut parts = vec![Part {
        name: "device task future (engine::device::run, whole)",
        bytes: future_size(device::run),
    }];
    parts.extend(
        device::parts()
            .into_iter()
            .map(|(name, bytes)| Part { name, bytes }),
    );
    parts.push(Part {
        name: "  tokio Sleep (one per pinned timer)",
        bytes: size_of::<tokio::time::Sleep>(),
    });
    parts.push(Part {
        name: "  cancellation waiter (WaitForCancellationFuture)",
        bytes: size_of::<tokio_util::sync::WaitForCancellationFuture<'static>>(),
    });
    parts
}
