//! The SageMaker container contract: laying out /opt/ml, running training jobs and starting hosting instances.
