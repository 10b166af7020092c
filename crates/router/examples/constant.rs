//! The serving benchmark's upper bound: `POST /invocations` answered with a constant, on sagebrush's own HTTP stack.
//!
//! Usage: `constant <port>` (listens on 127.0.0.1).

use axum::http::header;
use axum::routing::post;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8080);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app = axum::Router::new()
        .route("/invocations", post(|| async { ([(header::CONTENT_TYPE, "text/csv")], "setosa\n") }));
    axum::serve(listener, app).await
}
