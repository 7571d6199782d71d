//! Creates whose process died before they finished: found from their pending records' tickets
//! (see "Creating a VM, and pending records" in ARCHITECTURE.md), and undone.

use std::time::Duration;

use super::Ctx;
use crate::pending::{self, Abandoned, Ticket};
use crate::store::{OwnerKind, StoreError};
use crate::vsphere::model::Inventory;
use crate::vsphere::vm_ops;

/// Pending VM tickets of this vCenter whose create is over without having finished; looked up
/// once per process (the store scan would otherwise run for every VM of a plan).
pub async fn abandoned<'c>(
    ctx: Ctx<'c>,
    inventory: &Inventory,
) -> Result<&'c [Abandoned], StoreError> {
    let found = ctx.creates.abandoned.get_or_try_init(|| async {
        let vcenter = inventory.instance_uuid.clone();
        let owners = ctx
            .store
            .blocking(move |s| s.pending_owners(&vcenter, OwnerKind::Vm))
            .await?;
        let now = crate::store::unix_now();
        let here = pending::this_host();
        Ok::<_, StoreError>(
            owners
                .into_iter()
                .filter_map(|o| {
                    let ticket = Ticket::parse(&o.owner_id)?;
                    let age = Duration::from_secs(now.saturating_sub(o.created_at).max(0) as u64);
                    ticket
                        .abandoned(age, &here, pending::process_alive)
                        .then_some(Abandoned {
                            ticket,
                            addresses: o.addresses,
                        })
                })
                .collect(),
        )
    });
    Ok(found.await?.as_slice())
}

/// Undoes creates whose process died: asks vCenter for the VM each may have left (by the
/// instance UUID its ticket gave the clone), destroys it, and only then releases the pending
/// addresses. A ticket whose VM cannot be looked up or removed keeps its addresses for the
/// next sweep. Returns whether a VM was destroyed, so the caller reloads the snapshot.
pub async fn sweep_pending(ctx: Ctx<'_>, inventory: &Inventory) -> bool {
    let tickets = match abandoned(ctx, inventory).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("cannot look for abandoned VM creates: {e}");
            return false;
        }
    };
    let client = ctx.cache.client();
    let mut destroyed = false;
    for Abandoned { ticket, addresses } in tickets {
        match vm_ops::find_by_instance_uuid(client, &ticket.instance_uuid).await {
            Ok(None) => {}
            Ok(Some(moref)) => match vm_ops::destroy_vm(client, &moref).await {
                Ok(()) => {
                    destroyed = true;
                    tracing::warn!(vm = %moref, "destroyed a VM left behind by an interrupted create");
                }
                Err(e) => {
                    tracing::warn!(vm = %moref, "cannot destroy a VM left behind by an interrupted create: {e}");
                    continue;
                }
            },
            Err(e) => {
                tracing::warn!(ticket = %ticket.owner_id(), "cannot find out whether an interrupted create left a VM: {e}");
                continue;
            }
        }
        match release(ctx, &ticket.owner_id()).await {
            Ok(()) => tracing::warn!(
                ticket = %ticket.owner_id(),
                addresses = ?addresses,
                "released the addresses of an interrupted VM create"
            ),
            Err(e) => tracing::warn!("cannot release the addresses of an interrupted create: {e}"),
        }
    }
    destroyed
}

/// Releases the records of a creation ticket.
pub(super) async fn release(ctx: Ctx<'_>, owner: &str) -> Result<(), StoreError> {
    let owner = owner.to_string();
    ctx.store
        .blocking(move |s| s.release_owner(OwnerKind::Vm, &owner))
        .await
        .map(drop)
}
