pub mod characters;
pub mod export;
pub mod media;
pub mod photos;
