//! The builtin generator's renderer: a landscape "photo" painted in-process, offline, in a few
//! milliseconds. The character sets the palette, the prompt picks the scene (time of day,
//! sea, mountains, city or hills) and, with the seed, where everything goes, so two characters
//! or two prompts never send the same picture, and one seed always paints the same one.

use image::{Rgb, RgbImage};

/// A small deterministic generator (SplitMix64): the same seed paints the same picture.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOfDay {
    Day,
    Sunset,
    Night,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Land {
    Hills,
    Mountains,
    Sea,
    City,
}

/// What the prompt asks for; words in French or English, anything else left to the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scene {
    pub time: TimeOfDay,
    pub land: Land,
}

impl Scene {
    pub fn from_prompt(prompt: &str, seed: u64) -> Self {
        let p = prompt.to_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| p.contains(w));
        let time = if any(&["nuit", "night", "étoile", "star", "lune", "moon", "minuit"]) {
            TimeOfDay::Night
        } else if any(&[
            "coucher",
            "sunset",
            "crépuscule",
            "dusk",
            "soir",
            "evening",
            "aube",
        ]) {
            TimeOfDay::Sunset
        } else if any(&["jour", "day", "matin", "morning", "midi", "soleil", "sun"]) {
            TimeOfDay::Day
        } else {
            [TimeOfDay::Day, TimeOfDay::Sunset, TimeOfDay::Night][(seed % 3) as usize]
        };
        let land = if any(&[
            "mer", "sea", "plage", "beach", "océan", "ocean", "lac", "lake",
        ]) {
            Land::Sea
        } else if any(&[
            "montagne", "mountain", "neige", "snow", "alpes", "sommet", "peak",
        ]) {
            Land::Mountains
        } else if any(&[
            "ville", "city", "paris", "rue", "street", "toit", "roof", "café",
        ]) {
            Land::City
        } else if any(&[
            "colline",
            "hill",
            "campagne",
            "countryside",
            "champ",
            "field",
            "forêt",
        ]) {
            Land::Hills
        } else {
            [Land::Hills, Land::Mountains, Land::Sea, Land::City][((seed >> 8) % 4) as usize]
        };
        Self { time, land }
    }
}

type Color = [f32; 3];

/// HSL (hue in turns) to linear-ish RGB in `[0, 1]`.
fn hsl(h: f32, s: f32, l: f32) -> Color {
    let h = h.rem_euclid(1.0);
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - ((h * 6.0) % 2.0 - 1.0).abs());
    let m = l - c / 2.0;
    let (r, g, b) = match (h * 6.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    [r + m, g + m, b + m]
}

fn mix(a: Color, b: Color, t: f32) -> Color {
    let t = t.clamp(0.0, 1.0);
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn add(a: Color, b: Color, k: f32) -> Color {
    [a[0] + b[0] * k, a[1] + b[1] * k, a[2] + b[2] * k]
}

/// A ridge line: a sum of sines across the picture.
struct Ridge {
    base: f32,
    waves: [(f32, f32, f32); 4],
    color: Color,
}

impl Ridge {
    fn height(&self, x: f32) -> f32 {
        self.base
            + self
                .waves
                .iter()
                .map(|(amp, freq, phase)| amp * (x * freq + phase).sin())
                .sum::<f32>()
    }
}

/// Paints a `width`×`height` picture for a character (its id sets the palette) and a prompt.
pub fn render(character_id: &str, prompt: &str, seed: u64, width: u32, height: u32) -> RgbImage {
    let scene = Scene::from_prompt(prompt, seed);
    let mut rng = Rng(seed);
    // The character's hue: stable across all the photos it sends.
    let hue = (character_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
        % 360) as f32
        / 360.0;
    let (w, h) = (width as f32, height as f32);
    let horizon = rng.range(0.55, 0.7);
    let (sky_top, sky_low, light) = match scene.time {
        TimeOfDay::Day => (
            hsl(0.58 + hue * 0.05, 0.65, 0.45),
            hsl(0.55 + hue * 0.05, 0.5, 0.82),
            [1.0, 0.97, 0.85],
        ),
        TimeOfDay::Sunset => (
            hsl(0.72 + hue * 0.1, 0.45, 0.3),
            hsl(0.06 + hue * 0.04, 0.85, 0.6),
            [1.0, 0.75, 0.45],
        ),
        TimeOfDay::Night => (
            hsl(0.65 + hue * 0.05, 0.6, 0.06),
            hsl(0.62 + hue * 0.05, 0.45, 0.22),
            [0.9, 0.92, 1.0],
        ),
    };
    // Sun or moon.
    let body = (
        rng.range(0.15, 0.85) * w,
        rng.range(0.12, horizon - 0.15) * h,
        rng.range(0.04, 0.08) * w,
    );
    let stars: Vec<(f32, f32, f32)> = if scene.time == TimeOfDay::Night {
        (0..140)
            .map(|_| {
                (
                    rng.unit() * w,
                    rng.unit() * horizon * h,
                    rng.range(0.3, 1.0),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let layers = match scene.land {
        Land::Sea => 0,
        Land::City => 2,
        _ => 4,
    };
    let shade = match scene.time {
        TimeOfDay::Day => 0.5,
        TimeOfDay::Sunset => 0.3,
        TimeOfDay::Night => 0.12,
    };
    let ridges: Vec<Ridge> = (0..layers)
        .map(|i| {
            let depth = i as f32 / layers.max(1) as f32;
            let amp = match scene.land {
                Land::Mountains => 0.16 * (1.0 - depth * 0.5),
                _ => 0.05 * (1.0 - depth * 0.4),
            };
            let mut waves = [(0.0, 0.0, 0.0); 4];
            for (k, wave) in waves.iter_mut().enumerate() {
                let f = (k + 1) as f32;
                *wave = (
                    amp / f * rng.range(0.6, 1.2) * h,
                    f * rng.range(1.5, 3.5) / w * std::f32::consts::TAU / 4.0,
                    rng.range(0.0, std::f32::consts::TAU),
                );
            }
            let land_hue = match scene.land {
                Land::Mountains => 0.6 + hue * 0.1,
                Land::City => 0.7 + hue * 0.2,
                _ => 0.25 + hue * 0.15,
            };
            Ridge {
                base: (horizon + depth * (1.0 - horizon) * 0.75) * h,
                waves,
                color: hsl(land_hue, 0.35, shade * (0.9 - depth * 0.55)),
            }
        })
        .collect();
    // City: buildings on the first ridge, with lit windows after dark.
    let buildings: Vec<(f32, f32, f32)> = if scene.land == Land::City {
        let mut x = 0.0;
        let mut v = Vec::new();
        while x < w {
            let bw = rng.range(0.05, 0.12) * w;
            v.push((x, bw, rng.range(0.08, 0.3) * h));
            x += bw + rng.range(0.0, 0.01) * w;
        }
        v
    } else {
        Vec::new()
    };
    let windows_lit = scene.time != TimeOfDay::Day;

    let mut img = RgbImage::new(width, height);
    let mut grain = Rng(seed ^ 0xD1B5_4A32_D192_ED03);
    for y in 0..height {
        let fy = y as f32;
        for x in 0..width {
            let fx = x as f32;
            // Sky, with the glow of the sun or moon.
            let t = fy / (horizon * h);
            let mut c = mix(sky_top, sky_low, t * t);
            let d = ((fx - body.0).powi(2) + (fy - body.1).powi(2)).sqrt();
            if d < body.2 {
                c = light;
            } else {
                let glow = (body.2 * 2.5 / d).powi(2) * 0.35;
                c = add(c, light, glow);
            }
            for &(sx, sy, b) in &stars {
                if (fx - sx).abs() < 1.0 && (fy - sy).abs() < 1.0 {
                    c = mix(c, [1.0, 1.0, 1.0], b);
                }
            }
            // Sea: below the horizon, darker with depth, with a shimmering reflection.
            if scene.land == Land::Sea && fy > horizon * h {
                let depth = (fy - horizon * h) / ((1.0 - horizon) * h);
                let water = mix(
                    sky_low,
                    hsl(0.58 + hue * 0.1, 0.5, shade * 0.6),
                    depth.sqrt(),
                );
                let ripple = ((fy * 0.9).sin() * (fx * 0.05 + fy * 0.3).sin()).abs();
                let reflect = (1.0 - ((fx - body.0).abs() / (body.2 * 1.5))).max(0.0) * ripple;
                c = add(water, light, reflect * 0.6);
            }
            // Land, back to front.
            for (i, r) in ridges.iter().enumerate() {
                let top = r.height(fx);
                if fy >= top {
                    let haze = if i == 0 { 0.25 } else { 0.0 };
                    c = mix(r.color, sky_low, haze);
                    if scene.land == Land::Mountains && i == 0 && fy < top + 0.04 * h {
                        c = mix(c, [0.95, 0.96, 1.0], 0.8); // snow caps
                    }
                }
            }
            if let Some(&(bx, bw, bh)) = buildings
                .iter()
                .find(|(bx, bw, _)| fx >= *bx && fx < bx + bw)
            {
                let ground = ridges[0].height(fx);
                if fy >= ground - bh && fy < ground {
                    c = hsl(0.65 + hue * 0.1, 0.2, shade * 0.45);
                    let (wx, wy) = ((fx - bx) % 9.0, (fy - (ground - bh)) % 11.0);
                    let lit = ((bx as u32).wrapping_mul(7) + (fy as u32 / 11) * 13) % 5 < 2;
                    if wx > 3.0 && wx < 7.0 && wy > 3.0 && wy < 8.0 && fx < bx + bw - 3.0 {
                        c = if windows_lit && lit {
                            [1.0, 0.85, 0.5]
                        } else {
                            mix(c, sky_low, 0.35)
                        };
                    }
                }
            }
            // Vignette and a little film grain: it is a photo after all.
            let (dx, dy) = (fx / w - 0.5, fy / h - 0.5);
            let vignette = 1.0 - (dx * dx + dy * dy) * 0.6;
            let n = (grain.unit() - 0.5) * 0.04;
            let px = c.map(|v| ((v * vignette + n).clamp(0.0, 1.0) * 255.0) as u8);
            img.put_pixel(x, y, Rgb(px));
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_picks_the_scene() {
        let s = Scene::from_prompt("Un coucher de soleil sur la plage", 0);
        assert_eq!((s.time, s.land), (TimeOfDay::Sunset, Land::Sea));
        let s = Scene::from_prompt("the city at night", 0);
        assert_eq!((s.time, s.land), (TimeOfDay::Night, Land::City));
        let s = Scene::from_prompt("snowy mountain morning", 0);
        assert_eq!((s.time, s.land), (TimeOfDay::Day, Land::Mountains));
    }

    #[test]
    fn one_seed_one_picture_and_every_input_changes_it() {
        let a = render("sophia", "la plage", 7, 64, 64);
        assert_eq!(a, render("sophia", "la plage", 7, 64, 64));
        assert_ne!(a, render("marcus", "la plage", 7, 64, 64));
        assert_ne!(a, render("sophia", "la montagne", 7, 64, 64));
        assert_ne!(a, render("sophia", "la plage", 8, 64, 64));
    }
}
