//! Faults: what vCenter answered when a call failed (its type, messages and fields, its
//! cause), or that no answer came (a lost answer, whose outcome is unknown), and asking a read
//! again after a lost answer.

use std::fmt;
use std::time::{Duration, Instant};

use vim_rs::core::client::Error as VimError;
use vim_rs::types::struct_enum::StructType;
use vim_rs::types::structs::MethodFault;

use crate::client::{describe_vim_error, is_lost_answer, VsphereClient};
use crate::vm_ops::VmOpError;

/// Finding out what a call whose answer was lost did: the first pause before asking again,
/// doubled each time up to the second.
const FIND_OUT_PAUSE: Duration = Duration::from_millis(200);
const FIND_OUT_PAUSE_MAX: Duration = Duration::from_secs(5);

/// A fault from vCenter (method or task), with its type when known, or a lost answer.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub kind: Option<StructType>,
    pub text: String,
    /// The request may have reached vCenter but no answer came back: what it did is unknown.
    pub lost: bool,
}

impl Fault {
    pub fn from_vim(err: &VimError) -> Fault {
        match err {
            VimError::MethodFault(fault) => Fault::from_method_fault(fault),
            other => Fault {
                kind: None,
                text: describe_vim_error(other),
                lost: is_lost_answer(other),
            },
        }
    }

    pub fn from_method_fault(fault: &MethodFault) -> Fault {
        Fault {
            kind: fault.type_,
            text: describe_fault(fault),
            lost: false,
        }
    }

    pub fn text(text: impl Into<String>) -> Fault {
        Fault {
            kind: None,
            text: text.into(),
            lost: false,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A failed step of a multi-step operation.
#[derive(Debug)]
pub(crate) struct StepError {
    pub step: String,
    pub fault: Fault,
}

impl StepError {
    pub fn new(step: impl Into<String>, fault: Fault) -> StepError {
        StepError {
            step: step.into(),
            fault,
        }
    }

    /// The public error: [`VmOpError::Unknown`] when the answer was lost and could not be found
    /// out, else [`VmOpError::Failed`] (`NotFound` first for a VM that is gone).
    pub fn into_op_error(self, vm: Option<&str>) -> VmOpError {
        if self.fault.lost {
            return VmOpError::Unknown {
                step: self.step,
                reason: self.fault.text,
                moref: vm.map(str::to_string),
            };
        }
        if let (Some(StructType::ManagedObjectNotFound), Some(vm)) = (self.fault.kind, vm) {
            return VmOpError::NotFound(vm.to_string());
        }
        VmOpError::Failed {
            step: self.step,
            reason: self.fault.text,
        }
    }
}

/// Fault type, messages, the fault's own fields (e.g. NicSettingMismatch's NIC counts) and cause.
fn describe_fault(fault: &MethodFault) -> String {
    let mut text = fault
        .type_
        .map(|t| t.as_str())
        .unwrap_or("MethodFault")
        .to_string();
    let messages: Vec<&str> = fault
        .fault_message
        .iter()
        .flatten()
        .map(|m| m.message.as_deref().unwrap_or(&m.key))
        .filter(|m| !m.is_empty())
        .collect();
    if !messages.is_empty() {
        text.push_str(": ");
        text.push_str(&messages.join("; "));
    }
    let mut fields: Vec<String> = fault
        .extra_fields_
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .map(|(k, v)| format!("{k}={}", miniserde::json::to_string(v)))
        .collect();
    if !fields.is_empty() {
        fields.sort();
        text.push_str(&format!(" ({})", fields.join(", ")));
    }
    if let Some(cause) = fault.fault_cause.as_deref() {
        text.push_str(", caused by ");
        text.push_str(&describe_fault(cause));
    }
    text
}

/// Runs `attempt` (a call that changes nothing) again while its answer is lost, pausing
/// longer each time, until the client's find-out budget is spent; the last fault then.
pub(crate) async fn retry_lost<T, F, Fut>(
    client: &VsphereClient,
    what: &str,
    attempt: F,
) -> Result<T, Fault>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, Fault>>,
{
    let deadline = Instant::now() + client.find_out_budget();
    let mut pause = FIND_OUT_PAUSE;
    loop {
        match attempt().await {
            Err(fault) if fault.lost && Instant::now() + pause < deadline => {
                tracing::info!(error = %fault, "{what}: no answer; asking again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(FIND_OUT_PAUSE_MAX);
            }
            other => return other,
        }
    }
}
