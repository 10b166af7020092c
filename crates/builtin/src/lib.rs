//! Built-in algorithms (decision tree, random forest) behind the SageMaker train/serve contract.
