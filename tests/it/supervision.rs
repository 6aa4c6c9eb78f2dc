//! Supervision: a child that panics comes back while its siblings keep serving, restarts are
//! counted, a spent restart budget escalates to the parent, and operators can restart any
//! subsystem through the registry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use telebot::supervision::{
    ActorSlot, ChildSpec, ChildState, Registry, RestartPolicy, Strategy, SupervisionError,
    Supervisor,
};

/// A child that answers pings and panics on request.
#[derive(Clone)]
struct Worker {
    starts: Arc<AtomicUsize>,
}

enum WorkerMsg {
    Ping(RpcReplyPort<usize>),
    Boom,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = usize;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<WorkerMsg>, _: ()) -> Result<usize, ActorProcessingErr> {
        Ok(self.starts.fetch_add(1, Ordering::SeqCst) + 1)
    }

    async fn handle(
        &self,
        _: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        generation: &mut usize,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Ping(reply) => {
                let _ = reply.send(*generation);
            }
            WorkerMsg::Boom => panic!("boom on purpose"),
        }
        Ok(())
    }
}

struct Child {
    starts: Arc<AtomicUsize>,
    slot: ActorSlot<WorkerMsg>,
}

impl Child {
    fn new() -> Self {
        Child {
            starts: Arc::new(AtomicUsize::new(0)),
            slot: ActorSlot::new(),
        }
    }

    fn spec(&self, name: &str) -> ChildSpec {
        let worker = Worker {
            starts: self.starts.clone(),
        };
        let slot = self.slot.clone();
        ChildSpec::new(name, move |sup| {
            let worker = worker.clone();
            let slot = slot.clone();
            async move {
                let (actor, _) = Actor::spawn_linked(None, worker, (), sup).await?;
                slot.set(actor.clone());
                Ok(actor.get_cell())
            }
        })
    }

    async fn ping(&self) -> Option<usize> {
        let actor = self.slot.get()?;
        match actor
            .call(WorkerMsg::Ping, Some(Duration::from_millis(500)))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(n)) => Some(n),
            _ => None,
        }
    }

    fn boom(&self) {
        self.slot
            .get()
            .expect("running")
            .cast(WorkerMsg::Boom)
            .expect("delivered");
    }

    fn starts(&self) -> usize {
        self.starts.load(Ordering::SeqCst)
    }
}

fn policy(max_restarts: u32) -> RestartPolicy {
    RestartPolicy {
        strategy: Strategy::OneForOne,
        max_restarts,
        window: Duration::from_secs(30),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
    }
}

async fn start_root(
    children: Vec<ChildSpec>,
    policy: RestartPolicy,
    registry: &Registry,
) -> ActorRef<telebot::messages::supervisor::SupervisorMsg> {
    let root = Supervisor {
        path: String::new(),
        policy,
        children,
        registry: registry.clone(),
        stop_timeout: Duration::from_secs(2),
    };
    Actor::spawn(None, root, ()).await.expect("root starts").0
}

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_panicking_child_comes_back_while_the_rest_keeps_serving() {
    let registry = Registry::new();
    let flaky = Child::new();
    let steady = Child::new();
    let root = start_root(
        vec![flaky.spec("flaky"), steady.spec("steady")],
        policy(5),
        &registry,
    )
    .await;
    assert_eq!(flaky.ping().await, Some(1));

    flaky.boom();
    let generation = crate::common::wait_for("flaky to be restarted", LIMIT, || async {
        flaky.ping().await.filter(|&g| g == 2)
    })
    .await;
    assert_eq!(
        generation, 2,
        "a new instance answers through the same handle"
    );
    assert_eq!(
        steady.ping().await,
        Some(1),
        "the sibling was never restarted"
    );
    assert_eq!(steady.starts(), 1);

    let status = registry.status("flaky").unwrap();
    assert_eq!(status.restarts, 1);
    assert_eq!(status.state, ChildState::Running);
    assert!(status.last_error.unwrap().contains("boom on purpose"));
    assert_eq!(registry.status("steady").unwrap().restarts, 0);
    root.stop_and_wait(None, Some(LIMIT)).await.unwrap();
    assert_eq!(registry.status("flaky").unwrap().state, ChildState::Stopped);
}

#[tokio::test]
async fn one_for_all_restarts_the_siblings_too() {
    let registry = Registry::new();
    let a = Child::new();
    let b = Child::new();
    let root = start_root(
        vec![a.spec("a"), b.spec("b")],
        policy(5).with_strategy(Strategy::OneForAll),
        &registry,
    )
    .await;
    a.boom();
    crate::common::wait_for("both children restarted", LIMIT, || async {
        (a.ping().await == Some(2) && b.ping().await == Some(2)).then_some(())
    })
    .await;
    root.stop_and_wait(None, Some(LIMIT)).await.unwrap();
}

#[tokio::test]
async fn a_spent_budget_escalates_to_the_parent() {
    let registry = Registry::new();
    let worker = Child::new();
    let sub = ChildSpec::supervisor(
        "sub",
        "sub".to_owned(),
        policy(2),
        vec![worker.spec("worker")],
        registry.clone(),
        Duration::from_secs(2),
    );
    let root = start_root(vec![sub], policy(5), &registry).await;

    // two failures are absorbed by "sub" itself
    for expected in 2..=3 {
        worker.boom();
        crate::common::wait_for("worker restarted by its supervisor", LIMIT, || async {
            worker.ping().await.filter(|&g| g == expected)
        })
        .await;
    }
    assert_eq!(registry.status("sub").unwrap().restarts, 0);
    assert_eq!(registry.status("sub/worker").unwrap().restarts, 2);

    // the third spends the budget: "sub" gives up, and the root restarts the whole subtree
    worker.boom();
    crate::common::wait_for(
        "the root to restart the escalated subtree",
        LIMIT,
        || async {
            (registry.status("sub").map(|s| s.restarts) == Some(1)
                && registry.status("sub").map(|s| s.state) == Some(ChildState::Running))
            .then_some(())
        },
    )
    .await;
    let sub = registry.status("sub").unwrap();
    assert!(
        sub.last_error
            .unwrap()
            .contains("exceeded its restart budget")
    );
    let generation = crate::common::wait_for("a fresh worker", LIMIT, || async {
        worker.ping().await.filter(|&g| g == 4)
    })
    .await;
    assert_eq!(generation, 4);
    root.stop_and_wait(None, Some(LIMIT)).await.unwrap();
}

/// Receives what a top-level supervisor reports when it gives up.
struct Parent {
    failures: Arc<AtomicUsize>,
}

impl Actor for Parent {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        evt: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(_, err) = evt {
            assert!(
                err.to_string().contains("exceeded its restart budget"),
                "{err}"
            );
            self.failures.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_top_supervisor_fails_to_its_owner_when_its_budget_is_spent() {
    let failures = Arc::new(AtomicUsize::new(0));
    let (parent, _) = Actor::spawn(
        None,
        Parent {
            failures: failures.clone(),
        },
        (),
    )
    .await
    .unwrap();
    let registry = Registry::new();
    let worker = Child::new();
    let root = Supervisor {
        path: String::new(),
        policy: policy(1),
        children: vec![worker.spec("worker")],
        registry: registry.clone(),
        stop_timeout: Duration::from_secs(2),
    };
    Actor::spawn_linked(None, root, (), parent.get_cell())
        .await
        .unwrap();
    worker.boom();
    crate::common::wait_for("first restart", LIMIT, || async {
        worker.ping().await.filter(|&g| g == 2)
    })
    .await;
    worker.boom();
    crate::common::wait_for("escalation to the owner", LIMIT, || async {
        (failures.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    assert_eq!(registry.status("worker").unwrap().state, ChildState::Failed);
    parent.stop(None);
}

#[tokio::test]
async fn operators_restart_any_subsystem_through_the_registry() {
    let registry = Registry::new();
    let worker = Child::new();
    let other = Child::new();
    let sub = ChildSpec::supervisor(
        "payments",
        "payments".to_owned(),
        policy(3),
        vec![worker.spec("matcher")],
        registry.clone(),
        Duration::from_secs(2),
    );
    let root = start_root(vec![sub, other.spec("bot")], policy(3), &registry).await;
    assert_eq!(worker.ping().await, Some(1));

    registry.restart("payments/matcher", LIMIT).await.unwrap();
    assert_eq!(worker.ping().await, Some(2));
    assert_eq!(registry.status("payments/matcher").unwrap().restarts, 1);

    // restarting a subsystem restarts everything under it
    registry.restart("payments", LIMIT).await.unwrap();
    assert_eq!(worker.ping().await, Some(3));
    assert_eq!(registry.status("payments").unwrap().restarts, 1);
    assert_eq!(
        registry.status("payments").unwrap().state,
        ChildState::Running
    );
    assert_eq!(
        other.ping().await,
        Some(1),
        "other subsystems are untouched"
    );

    let err = registry.restart("nope", LIMIT).await.unwrap_err();
    assert!(matches!(err, SupervisionError::UnknownSubsystem(_)));
    let listed: Vec<String> = registry.list().into_iter().map(|s| s.path).collect();
    assert_eq!(listed, vec!["bot", "payments", "payments/matcher"]);
    root.stop_and_wait(None, Some(LIMIT)).await.unwrap();
}
