//! The VM create sequence (`vsphereipam::vmlife`) without Terraform, against the simulator
//! through the fault proxy: a create whose clone answer was lost goes on with the VM found by
//! its instance UUID; a failure vCenter reports releases the addresses; an outcome that cannot
//! be found out keeps them pending under the ticket; a failed create gives its host back.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::env::Env;
use common::proxy::FaultProxy;
use common::sim::Sim;
use vsphereipam::ipam::subnet::{validate, Field, SubnetInput};
use vsphereipam::provider::customization::GuestInput;
use vsphereipam::store::{OwnerKind, Store, SubnetRecord};
use vsphereipam::vmlife::{self, CreateError, Creates, Ctx, Held, NicInput, VmRequest};
use vsphereipam::vsphere::cache::InventoryCache;
use vsphereipam::vsphere::vm_ops::VmOpError;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A store with one subnet on pg-app; its id.
fn store_with_subnet(env: &Env) -> (Store, String) {
    let store = env.store();
    let subnet = SubnetRecord {
        id: "app".into(),
        vcenter: env.sim.info.instance_uuid.clone(),
        name: "app".into(),
        wire_id: env.wire_id("pg-app"),
        domain: Some("app.example.com".into()),
        spec: validate(&SubnetInput {
            cidr: Field::Value("10.20.0.0/24".into()),
            start_ip: Field::Value("10.20.0.100".into()),
            ..Default::default()
        })
        .unwrap()
        .unwrap(),
    };
    store.create_subnet(&subnet, &[]).unwrap();
    (store, subnet.id)
}

fn request(name: &str, subnet: &str) -> VmRequest {
    VmRequest {
        name: name.into(),
        datacenter: "DC0".into(),
        template: "tmpl-linux".into(),
        wait: true,
        timeout: Duration::from_secs(30),
        num_cpus: None,
        memory_mb: None,
        host: None,
        folder: None,
        datastore: None,
        hostname: None,
        guest: Arc::new(GuestInput::Default),
        nics: vec![NicInput {
            subnet_id: subnet.into(),
            ..Default::default()
        }],
    }
}

fn held(store: &Store, subnet: &str) -> Vec<vsphereipam::store::AddressRecord> {
    store
        .addresses(subnet)
        .unwrap()
        .into_iter()
        .filter(|a| a.owner_kind == OwnerKind::Vm)
        .collect()
}

#[test]
fn create_outcomes_known_lost_and_unknown() {
    let sim = Sim::start("test");
    let env = Env::new(&sim, "");
    let (store, subnet) = store_with_subnet(&env);
    let proxy = FaultProxy::https(&sim.info.url);
    let rt = runtime();
    let client = rt.block_on(async {
        let options = vsphereipam::vsphere::client::ConnectOptions {
            server: proxy.server(),
            ..sim.connect_options()
        };
        vsphereipam::vsphere::client::connect(&options)
            .await
            .unwrap()
    });
    client.set_find_out_budget(Duration::from_secs(1));
    let cache = InventoryCache::new(client);
    let creates = Creates::default();
    let ctx = Ctx {
        cache: &cache,
        store: &store,
        creates: &creates,
    };

    // The clone's answer is lost: the VM is found by its instance UUID and finished.
    proxy.drop_answer("CloneVM_Task", 1);
    let created = rt
        .block_on(vmlife::create(ctx, &request("life-lost", &subnet)))
        .expect("create after a lost clone answer");
    assert_eq!(proxy.dropped("CloneVM_Task"), 1);
    let records = held(&store, &subnet);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].owner_id, created.uuid);
    assert!(!records[0].pending);
    assert_eq!(created.guest_ips, vec![records[0].ip]);

    // vCenter reports a failure: the partial VM is removed and the address released.
    sim.control("fail", &[("method", "PowerOnVM_Task"), ("count", "1")]);
    let err = rt
        .block_on(vmlife::create(ctx, &request("life-failed", &subnet)))
        .expect_err("power on fails");
    assert!(
        matches!(
            err,
            CreateError::VCenter {
                error: VmOpError::CreateRolledBack { .. },
                held: Held::Released
            }
        ),
        "{err:?}"
    );
    assert_eq!(held(&store, &subnet).len(), 1);

    // The power-on went through, then vCenter is unreachable: nothing can be found out, so the
    // address stays pending under the ticket (the VM exists).
    proxy.drop_answer_then_refuse("PowerOnVM_Task", 1, Duration::from_secs(4));
    let err = rt
        .block_on(vmlife::create(ctx, &request("life-unknown", &subnet)))
        .expect_err("vCenter unreachable");
    assert!(
        matches!(
            err,
            CreateError::VCenter {
                held: Held::Pending,
                ..
            }
        ),
        "{err:?}"
    );
    let now = held(&store, &subnet);
    let pending: Vec<_> = now.iter().filter(|r| r.pending).collect();
    assert_eq!(pending.len(), 1, "{now:?}");
    let ticket = vsphereipam::pending::Ticket::parse(&pending[0].owner_id).unwrap();
    common::wait_for("vCenter reachable", Duration::from_millis(200), || {
        (!proxy.refusing()).then_some(())
    });
    rt.block_on(async {
        let vm = vsphereipam::vsphere::vm_ops::find_by_instance_uuid(
            cache.client(),
            &ticket.instance_uuid,
        )
        .await
        .unwrap();
        assert!(vm.is_some(), "the VM of the pending ticket");
    });
}

/// Creates of one process spread over hosts by counting what they placed since the snapshot; a
/// create that failed and left no VM takes its count back, so the next create goes where it
/// would have gone without the failure.
#[test]
fn a_failed_create_gives_its_host_back() {
    let sim = Sim::start("test");
    let env = Env::new(&sim, "");
    let (store, subnet) = store_with_subnet(&env);
    let rt = runtime();
    let cache = InventoryCache::new(rt.block_on(sim.client()));
    let creates = Creates::default();
    let ctx = Ctx {
        cache: &cache,
        store: &store,
        creates: &creates,
    };
    let inventory = rt.block_on(cache.get()).unwrap();
    let view = store.subnet(&subnet).unwrap().unwrap();
    let place = |extra: &HashMap<String, usize>| {
        vsphereipam::placement::place(&inventory, "DC0", &[&view], None, extra)
            .unwrap()
            .host
    };
    let fresh = place(&HashMap::new());
    // As many failures as it takes for counted ones to move the next create to another host.
    let failures = (1..20)
        .find(|n| place(&HashMap::from([(fresh.clone(), *n)])) != fresh)
        .expect("another host carries pg-app");
    for i in 0..failures {
        sim.control("fail", &[("method", "PowerOnVM_Task"), ("count", "1")]);
        let err = rt
            .block_on(vmlife::create(
                ctx,
                &request(&format!("gives-back-{i}"), &subnet),
            ))
            .expect_err("power on fails");
        assert!(
            matches!(
                err,
                CreateError::VCenter {
                    held: Held::Released,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let created = rt
        .block_on(vmlife::create(ctx, &request("after-the-failures", &subnet)))
        .expect("create");
    assert_eq!(
        created.host, fresh,
        "{failures} failed create(s) on {fresh} gave it back"
    );
}
