//! What a job or an instance is given whatever runs it: the CPU and memory of its SageMaker
//! instance type, and the labels saying whose it is.

use crate::Error;

/// CPU and memory for a SageMaker instance type, as the Engine's `NanoCpus` and `Memory` take them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub cpus: f64,
    pub memory_mib: u64,
}

/// The instance types sagebrush knows, with SageMaker's vCPU and memory; CPUs are capped at the host's count.
pub const INSTANCE_TYPES: &[(&str, Limits)] = &[
    ("ml.t3.medium", Limits { cpus: 2.0, memory_mib: 4096 }),
    ("ml.m5.large", Limits { cpus: 2.0, memory_mib: 8192 }),
    ("ml.m5.xlarge", Limits { cpus: 4.0, memory_mib: 16384 }),
    ("ml.c5.xlarge", Limits { cpus: 4.0, memory_mib: 8192 }),
];

/// The workshop's training instance.
pub const DEFAULT_INSTANCE_TYPE: &str = "ml.m5.large";

/// The limits of an instance type (the default type for `None`), or an error naming the known ones.
pub fn limits(instance_type: Option<&str>) -> Result<Limits, Error> {
    let instance_type = instance_type.unwrap_or(DEFAULT_INSTANCE_TYPE);
    INSTANCE_TYPES.iter().find(|(name, _)| *name == instance_type).map(|(_, limits)| *limits).ok_or_else(|| {
        let known: Vec<&str> = INSTANCE_TYPES.iter().map(|(name, _)| *name).collect();
        Error::UnknownInstanceType(format!(
            "unknown instance_type `{}`; sagebrush knows {}",
            names::excerpt(instance_type, 40),
            known.join(", ")
        ))
    })
}

/// Who a container belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// The home directory.
    pub home: String,
    /// The sagebrush process, `pid:start-time`.
    pub process: String,
}
