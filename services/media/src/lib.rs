//! The media service: the photos characters send. A request queues a job in PostgreSQL; workers
//! on any replica make the image (builtin renderer or an image API), store it through
//! `object_store`, and deliver it to the gallery and the conversation exactly once.

pub mod generator;
pub mod handlers;
pub mod jobs;
pub mod openapi;
pub mod render;
pub mod routes;
pub mod storage;
