//! A response sent before its request's body was read says `Connection: close`.
//!
//! hyper keeps a connection for the next request only once the current request's body has
//! been read to its end. A handler that answers early (rate limited, unauthenticated, body too
//! large) drops the body unread; hyper then closes the connection after the response, but the
//! response has already gone out without `Connection: close` unless the body happened to be
//! buffered already. A client that reuses the connection finds it closed under its next
//! request. Saying `Connection: close` lets the client open a new connection instead. Reading
//! the unread body instead would make a refused request cost what it was refused for.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Frame, SizeHint};

/// Middleware: marks the response `Connection: close` when the request had a body that was
/// not read to its end.
pub async fn close_if_body_unread(req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let read_to_end = Arc::new(AtomicBool::new(false));
    let flag = read_to_end.clone();
    let req = req.map(|inner| Body::new(Tracked { inner, flag }));
    let mut response = next.run(req).await;
    if !read_to_end.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it has been read to its end.
struct Tracked {
    inner: Body,
    flag: Arc<AtomicBool>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.flag.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
