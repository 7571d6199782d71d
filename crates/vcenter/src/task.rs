//! vCenter tasks: waiting for one, reading its result or fault, and running a task that changes
//! something so that a lost answer is found out instead of assumed.
//!
//! A task is awaited by reading its state once (every simulator task, and quick vCenter tasks,
//! are done by then), else through vim_rs's [`TaskTracker`], else by polling: over SOAP the
//! tracker stops on a failed task, whose `info.error` vim_rs 0.7 cannot decode, so a task's
//! fault is always read by its nested property paths (see [`read_task`]).

use std::time::{Duration, Instant};

use vim_rs::core::client::Error as VimError;
use vim_rs::core::tasks::TaskTracker;
use vim_rs::types::boxed_types::ValueElements;
use vim_rs::types::enums::TaskInfoStateEnum;
use vim_rs::types::struct_enum::StructType;
use vim_rs::types::structs::{ManagedObjectReference, MethodFault, PropertySpec};
use vim_rs::types::vim_any::VimAny;

use crate::client::VsphereClient;
use crate::fault::{Fault, StepError};
use crate::pc::{object_spec, retrieve};

/// Polling a task (only when the TaskTracker gave up on it) starts at this interval and doubles.
const TASK_POLL_START: Duration = Duration::from_millis(250);
const TASK_POLL_MAX: Duration = Duration::from_secs(5);

/// Starts a task that changes something (`start`) and waits for it. When the answer to the
/// start or to a task read is lost, `done` finds out whether the change is there (its reads
/// retried like any read); if it is not, the task is started again, until the client's
/// find-out budget is spent. A lost outcome that stays unknown is a [`Fault`] with `lost`.
pub(crate) async fn run_checked<S, SF, D, DF>(
    client: &VsphereClient,
    step: &str,
    start: S,
    done: D,
) -> Result<Option<VimAny>, StepError>
where
    S: Fn() -> SF,
    SF: std::future::Future<Output = Result<ManagedObjectReference, VimError>>,
    D: Fn() -> DF,
    DF: std::future::Future<Output = Result<bool, Fault>>,
{
    let deadline = Instant::now() + client.find_out_budget();
    let mut rerun = false;
    loop {
        let fault = match start().await {
            Ok(task) => match wait_task(client, task).await {
                Ok(result) => return Ok(result),
                Err(fault) => fault,
            },
            Err(e) => Fault::from_vim(&e),
        };
        // Run again after a lost answer, a customization is refused because the first one
        // is waiting for the power-on: it took effect.
        if rerun && fault.kind == Some(StructType::CustomizationPending) {
            tracing::info!(step, "found out: the call took effect");
            return Ok(None);
        }
        if !fault.lost {
            return Err(StepError::new(step, fault));
        }
        tracing::warn!(step, error = %fault, "the answer was lost; finding out what the call did");
        match done().await {
            Ok(true) => {
                tracing::info!(step, "found out: the call took effect");
                return Ok(None);
            }
            Ok(false) if Instant::now() < deadline => {
                tracing::info!(
                    step,
                    "found out: the call did not take effect; running it again"
                );
                rerun = true;
            }
            Ok(false) => return Err(StepError::new(step, fault)),
            Err(probe) => return Err(StepError::new(step, probe)),
        }
    }
}

/// Where a task is.
enum TaskOutcome {
    Running,
    Succeeded(Option<VimAny>),
    Failed(Fault),
}

/// Reads a task's state (and result or fault). Not through `Task.info`: over SOAP, vim_rs 0.7
/// cannot decode a failed task's `info.error` (it expects the VI/JSON shape, a bare fault, and
/// gets the LocalizedMethodFault wrapper), so the fault is read by its nested paths instead.
async fn read_task(
    client: &VsphereClient,
    task: &ManagedObjectReference,
) -> Result<TaskOutcome, Fault> {
    let props = |paths: &[&str]| PropertySpec {
        r#type: "Task".to_string(),
        all: Some(false),
        path_set: Some(paths.iter().map(|p| p.to_string()).collect()),
    };
    let contents = retrieve(
        client,
        vec![props(&["info.state", "info.result"])],
        vec![object_spec(task.clone())],
    )
    .await?;
    let mut state = None;
    let mut result = None;
    for prop in contents
        .into_iter()
        .flat_map(|c| c.prop_set.unwrap_or_default())
    {
        match (prop.name.as_str(), prop.val) {
            ("info.state", VimAny::Value(ValueElements::TaskInfoState(s))) => state = Some(s),
            ("info.result", val) => result = Some(val),
            _ => {}
        }
    }
    match state {
        Some(TaskInfoStateEnum::Success) => return Ok(TaskOutcome::Succeeded(result)),
        Some(TaskInfoStateEnum::Error) => {}
        Some(_) => return Ok(TaskOutcome::Running),
        None => return Err(Fault::text(format!("task {} reports no state", task.value))),
    }
    let contents = retrieve(
        client,
        vec![props(&["info.error.fault", "info.error.localizedMessage"])],
        vec![object_spec(task.clone())],
    )
    .await?;
    let mut fault = None;
    let mut message = None;
    for prop in contents
        .into_iter()
        .flat_map(|c| c.prop_set.unwrap_or_default())
    {
        match (prop.name.as_str(), prop.val) {
            ("info.error.fault", VimAny::Object(obj)) => {
                fault = obj
                    .as_any_box()
                    .downcast::<MethodFault>()
                    .ok()
                    .map(|f| Fault::from_method_fault(&f));
            }
            ("info.error.localizedMessage", VimAny::Value(ValueElements::PrimitiveString(m))) => {
                message = Some(m)
            }
            _ => {}
        }
    }
    let mut fault = fault.unwrap_or_else(|| Fault::text("the task failed without saying why"));
    // The simulator's "localized message" is only the Go type name of the fault.
    if let Some(m) =
        message.filter(|m| !m.is_empty() && !m.starts_with('*') && !fault.text.contains(m.as_str()))
    {
        fault.text = format!("{m} ({})", fault.text);
    }
    Ok(TaskOutcome::Failed(fault))
}

/// Waits for a task: one read (tasks that are quick, and every simulator task, are done by
/// then), else vim_rs's TaskTracker, else (the tracker stops on a TaskInfo it cannot decode)
/// polling.
pub(crate) async fn wait_task(
    client: &VsphereClient,
    task: ManagedObjectReference,
) -> Result<Option<VimAny>, Fault> {
    match read_task(client, &task).await? {
        TaskOutcome::Succeeded(result) => return Ok(result),
        TaskOutcome::Failed(fault) => return Err(fault),
        TaskOutcome::Running => {}
    }
    match TaskTracker::new(client.vim()).wait_any(task.clone()).await {
        Ok(result) => return Ok(result),
        Err(e) => {
            if let Some(fault) = e.task_fault() {
                return Err(Fault::from_method_fault(fault));
            }
            tracing::debug!(
                task = %task.value,
                error = %e,
                "task tracking stopped; polling the task"
            );
        }
    }
    let mut delay = TASK_POLL_START;
    loop {
        match read_task(client, &task).await? {
            TaskOutcome::Succeeded(result) => return Ok(result),
            TaskOutcome::Failed(fault) => return Err(fault),
            TaskOutcome::Running => {}
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(TASK_POLL_MAX);
    }
}

pub(crate) fn result_moref(result: Option<VimAny>) -> Option<ManagedObjectReference> {
    match result? {
        VimAny::Object(obj) => obj
            .as_any_box()
            .downcast::<ManagedObjectReference>()
            .ok()
            .map(|m| *m),
        VimAny::Value(_) => None,
    }
}
