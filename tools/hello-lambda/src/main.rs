//! Echoes its event back: the smallest `lambda_runtime` function, for measuring start-up time.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(event.payload)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(echo)).await
}
