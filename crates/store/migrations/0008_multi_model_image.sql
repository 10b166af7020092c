-- A multi-model endpoint served by a container: the image that implements SageMaker's multi-model API.
ALTER TABLE endpoints ADD COLUMN multi_model_image TEXT;
