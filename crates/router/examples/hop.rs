//! The router's own hop, apart from the engine: an endpoint `hop` whose one instance is the HTTP
//! server at the given URL (by default `constant`'s answer, served in this process), so wrk through
//! `/endpoints/hop/invocations` against wrk straight to the instance shows what the forward path adds.
//!
//! One thread, as each of the server's router threads is.
//!
//! Usage: `hop <port> [instance URL, e.g. http://172.17.0.2:8080]` (listens on 127.0.0.1).

use std::sync::Arc;

use axum::http::header;
use axum::routing::post;
use names::Name;
use router::{Endpoint, Instance, Router, Upstream, Variant};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8081);
    let base_url = match std::env::args().nth(2) {
        Some(url) => url,
        None => {
            let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", upstream.local_addr()?);
            let app = axum::Router::new()
                .route("/invocations", post(|| async { ([(header::CONTENT_TYPE, "text/csv")], "setosa\n") }));
            tokio::spawn(async move { axum::serve(upstream, app).await });
            url
        }
    };
    let table = Router::new();
    let instance = Instance::Http { upstream: Upstream::new(base_url), owner: Box::new(()) };
    let variant = Variant::new(Name::all_traffic(), "hop".into(), vec![Arc::new(instance)]);
    let name = Name::parse("hop").map_err(std::io::Error::other)?;
    table.install(Endpoint::single(name, Arc::new(variant)));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, router::routes(table)).await
}
