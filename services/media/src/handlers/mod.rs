pub mod characters;
pub mod media;
pub mod photos;
