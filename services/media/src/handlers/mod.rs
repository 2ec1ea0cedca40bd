pub mod media;
pub mod photos;
