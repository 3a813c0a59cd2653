//! The webhook Lambda's translation layer: API Gateway HTTP API events in, the core's
//! `Ingress` decisions out. No decision is made here.

use alphadome::ingress::Ingress;
use alphadome::webhook::SIGNATURE_HEADER;
use lambda_http::{Body, Error, Request, RequestExt, Response};

/// Handles one API Gateway request.
pub async fn handle(ingress: &Ingress, req: Request) -> Result<Response<Body>, Error> {
    let reply = match req.method().as_str() {
        "GET" => {
            let params = req.query_string_parameters();
            ingress.verify_subscription(|k| params.first(k).map(str::to_owned))
        }
        "POST" => {
            let signature = req.headers().get(SIGNATURE_HEADER).map(|v| v.as_bytes());
            // lambda_http has already base64-decoded a body API Gateway marked as encoded.
            let body: &[u8] = match req.body() {
                Body::Empty => &[],
                Body::Text(t) => t.as_bytes(),
                Body::Binary(b) => b,
                _ => &[],
            };
            ingress.receive(signature, body).await
        }
        _ => alphadome::ingress::Reply {
            status: 405,
            body: "method not allowed".into(),
        },
    };
    Ok(Response::builder()
        .status(reply.status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::Text(reply.body))?)
}
