//! Unit tests of the request body limits and the request memory budget (`budget.rs`), driven frame
//! by frame without a server.

use crate::budget::{CallBudget, LimitedBody, RequestBudget};
use crate::limits::MessageLimit;
use bytes::Bytes;
use http_body::{Body, Frame};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tonic::{Code, Status};

/// A body that yields its frames, then stays pending (a client that stopped sending) or ends.
struct Frames {
    frames: VecDeque<Bytes>,
    ends: bool,
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match self.frames.pop_front() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None if self.ends => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

fn prefix(len: u32) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&len.to_be_bytes());
    out
}

const LIMIT: MessageLimit = MessageLimit { bytes: 100, name: "TEST_LIMIT" };

fn body(frames: Vec<Vec<u8>>, ends: bool, call: Option<Arc<CallBudget>>) -> LimitedBody {
    let inner = Frames { frames: frames.into_iter().map(Bytes::from).collect(), ends };
    LimitedBody::new(tonic::body::Body::new(inner), LIMIT, call, true)
}

/// Reads the body to its end or its first error.
async fn drain(mut body: LimitedBody) -> Result<usize, Status> {
    let mut bytes = 0;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            bytes += data.len();
        }
    }
    Ok(bytes)
}

fn call(budget: &Arc<RequestBudget>, within: Duration) -> Arc<CallBudget> {
    Arc::new(CallBudget::new(Arc::clone(budget), Instant::now() + within, within))
}

#[tokio::test]
async fn a_message_within_its_limit_passes_even_with_its_prefix_split() {
    let mut first = prefix(100);
    first.truncate(2);
    let frames = vec![first, vec![0, 0, 100], vec![7; 60], vec![7; 40]];
    assert_eq!(drain(body(frames, true, None)).await.expect("passes"), 105);
}

#[tokio::test]
async fn a_message_over_its_limit_is_refused_from_its_prefix() {
    // Only the prefix has arrived: the refusal does not wait for the rest.
    let refused = drain(body(vec![prefix(101)], false, None)).await.expect_err("over");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("TEST_LIMIT") && refused.message().contains("100 bytes"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_unary_call_carries_one_message() {
    let mut two = prefix(1);
    two.push(9);
    two.extend(prefix(0));
    let refused = drain(body(vec![two], true, None)).await.expect_err("two messages");
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_budget_is_reserved_from_the_prefix_and_returned_with_the_call() {
    let budget = Arc::new(RequestBudget::new(1000));
    let held = call(&budget, Duration::from_secs(5));
    let mut frames = prefix(100);
    frames.extend([1; 100]);
    drain(body(vec![frames], true, Some(Arc::clone(&held)))).await.expect("passes");
    assert_eq!(budget.available(), 1000 - crate::limits::wire_reservation(100));
    drop(held);
    assert_eq!(budget.available(), 1000);
}

#[tokio::test]
async fn a_message_waits_for_room_until_its_deadline_then_is_refused() {
    let budget = Arc::new(RequestBudget::new(400));
    // The first call holds 300 of the 400 bytes.
    let first = call(&budget, Duration::from_secs(5));
    drain(body(vec![[prefix(100), vec![1; 100]].concat()], true, Some(Arc::clone(&first))))
        .await
        .expect("first");
    // The second needs 300 too: it waits, and is refused at its deadline.
    let started = std::time::Instant::now();
    let second = call(&budget, Duration::from_millis(300));
    let refused = drain(body(vec![[prefix(100), vec![1; 100]].concat()], true, Some(second)))
        .await
        .expect_err("no room");
    assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.message().contains("REQUEST_MEMORY_BUDGET_BYTES"), "{refused:?}");
    // Once the first call ends, a third gets room after waiting.
    let third = call(&budget, Duration::from_secs(5));
    let waiting =
        tokio::spawn(drain(body(vec![[prefix(100), vec![1; 100]].concat()], true, Some(Arc::clone(&third)))));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "the third waits for room");
    drop(first);
    waiting.await.expect("task").expect("room once the first call ended");
    // A message that needs more than the whole budget is refused at once.
    let small = Arc::new(RequestBudget::new(250));
    let refused = drain(body(vec![prefix(100)], false, Some(call(&small, Duration::from_secs(5)))))
        .await
        .expect_err("larger than the budget");
    assert!(refused.message().contains("more than the server's whole budget"), "{refused:?}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_refused_at_the_deadline() {
    let budget = Arc::new(RequestBudget::new(1000));
    let held = call(&budget, Duration::from_millis(200));
    let started = std::time::Instant::now();
    let refused = drain(body(vec![prefix(50), vec![1; 10]], false, Some(Arc::clone(&held))))
        .await
        .expect_err("stalled");
    assert_eq!(refused.code(), Code::DeadlineExceeded);
    assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());
    drop(held);
    assert_eq!(budget.available(), 1000);
}
