//! `algorithm train|serve`: the built-in algorithms as a SageMaker bring-your-own container entry point.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::AlgorithmCommand;

pub async fn algorithm(command: AlgorithmCommand) -> anyhow::Result<ExitCode> {
    match command {
        AlgorithmCommand::Train { opt_ml } => {
            let mut stdout = std::io::stdout();
            match builtin::train(&opt_ml, &mut stdout) {
                Ok(_) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    // train() already wrote /opt/ml/output/failure; exit non-zero as SageMaker expects.
                    eprintln!("training failed: {e}");
                    Ok(ExitCode::from(255))
                }
            }
        }
        AlgorithmCommand::Serve { opt_ml, port } => {
            let model = builtin::Model::load(&opt_ml.join("model"))
                .with_context(|| format!("loading the model from {}", opt_ml.join("model").display()))?;
            let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
                .await
                .with_context(|| format!("cannot listen on port {port}"))?;
            eprintln!("serving /ping and /invocations on port {port}");
            axum::serve(listener, router::single_model_routes(Arc::new(model))).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `sandbox`: the process runtime's first process of a job's namespaces (see `runtime::sandbox`).
pub fn sandbox(args: crate::cli::SandboxArgs) -> ExitCode {
    let spec = runtime::sandbox::Spec {
        opt_ml: args.opt_ml,
        program: runtime::sandbox::Program { dir: args.program, workdir: args.workdir },
        serve_port: args.serve_port,
        hidden: args.hidden,
        command: args.command,
    };
    let code = runtime::sandbox::init(&spec);
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}
