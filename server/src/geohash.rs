//! The geohash arithmetic behind the GEO commands, as Redis 7.0 computes it: 52-bit
//! interleaved hashes of a longitude/latitude pair (the sorted-set score of a GEO member),
//! their decoding, the neighbouring cells, the nine cells a radius or box search scans, and
//! haversine distances on Redis's earth.
//!
//! Every operation is done in the same order and precision as Redis's `geohash.c` and
//! `geohash_helper.c`, because the results are visible: scores move between servers by RDB
//! and replication, and coordinates and distances are printed digit for digit. It knows
//! nothing of sorted sets or commands.

use std::f64::consts::PI;

/// Redis's latitude limits (EPSG:900913): the poles cannot be geocoded.
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
/// Bits per coordinate of a stored hash: 26 * 2 = 52 bits, exact in a double score.
pub const STEP_MAX: u8 = 26;

/// Earth's quadratic mean radius for WGS-84, as Redis uses it.
const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
/// Redis's `D_R`: degrees to radians by one multiplication (not `to_radians`'s rounding).
const D_R: f64 = PI / 180.0;

/// A hash of `step` bits per coordinate: longitude in the odd bits, latitude in the even.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

/// A coordinate interval.
#[derive(Debug, Clone, Copy)]
struct Range {
    min: f64,
    max: f64,
}

/// The cell a hash names.
#[derive(Debug, Clone, Copy)]
struct Area {
    longitude: Range,
    latitude: Range,
}

const WGS84_LONG: Range = Range {
    min: LONG_MIN,
    max: LONG_MAX,
};
const WGS84_LAT: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};
/// The standard geohash latitude range, which GEOHASH re-encodes into.
const STANDARD_LAT: Range = Range {
    min: -90.0,
    max: 90.0,
};

/// Whether a longitude/latitude pair can be stored.
pub fn valid(long: f64, lat: f64) -> bool {
    (LONG_MIN..=LONG_MAX).contains(&long) && (LAT_MIN..=LAT_MAX).contains(&lat)
}

fn interleave64(xlo: u32, ylo: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let (mut x, mut y) = (u64::from(xlo), u64::from(ylo));
    for k in (0..5).rev() {
        x = (x | (x << S[k])) & B[k];
        y = (y | (y << S[k])) & B[k];
    }
    x | (y << 1)
}

fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
        0x00000000FFFFFFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let (mut x, mut y) = (interleaved, interleaved >> 1);
    for k in 0..6 {
        x = (x | (x >> S[k])) & B[k];
        y = (y | (y >> S[k])) & B[k];
    }
    x | (y << 32)
}

/// Encodes a point already known to lie within both ranges.
fn encode(long_range: Range, lat_range: Range, long: f64, lat: f64, step: u8) -> Hash {
    let lat_offset = (lat - lat_range.min) / (lat_range.max - lat_range.min);
    let long_offset = (long - long_range.min) / (long_range.max - long_range.min);
    let scale = (1u64 << step) as f64;
    Hash {
        bits: interleave64((lat_offset * scale) as u32, (long_offset * scale) as u32),
        step,
    }
}

/// The cell of a hash (`None` for the zero hash, which marks an excluded search cell).
fn decode(hash: Hash) -> Option<Area> {
    decode_in(WGS84_LONG, WGS84_LAT, hash)
}

fn decode_in(long_range: Range, lat_range: Range, hash: Hash) -> Option<Area> {
    if hash.bits == 0 && hash.step == 0 {
        return None;
    }
    let sep = deinterleave64(hash.bits);
    let lat_scale = lat_range.max - lat_range.min;
    let long_scale = long_range.max - long_range.min;
    let ilato = sep as u32;
    let ilono = (sep >> 32) as u32;
    let cells = (1u64 << hash.step) as f64;
    // `+ 1` wraps in 32 bits as Redis's does, for scores no GEOADD produced.
    let edge = |lo: f64, i: u32, scale: f64| lo + (f64::from(i) * 1.0 / cells) * scale;
    Some(Area {
        latitude: Range {
            min: edge(lat_range.min, ilato, lat_scale),
            max: edge(lat_range.min, ilato.wrapping_add(1), lat_scale),
        },
        longitude: Range {
            min: edge(long_range.min, ilono, long_scale),
            max: edge(long_range.min, ilono.wrapping_add(1), long_scale),
        },
    })
}

/// The sorted-set score of a point (its 52-bit hash), for a valid pair.
pub fn score(long: f64, lat: f64) -> u64 {
    align52(encode(WGS84_LONG, WGS84_LAT, long, lat, STEP_MAX))
}

fn align52(hash: Hash) -> u64 {
    hash.bits << (52 - u32::from(hash.step) * 2)
}

/// C's `(uint64_t)` of a double as x86-64 code computes it: scores that are not geohashes
/// (negative, fractional, huge) decode to the same clamped point as in Redis.
fn c_to_u64(v: f64) -> u64 {
    const TWO63: f64 = 9223372036854775808.0;
    let cvtt = |x: f64| {
        if x.is_nan() || !(-TWO63..TWO63).contains(&x) {
            i64::MIN
        } else {
            x as i64
        }
    };
    if v < TWO63 {
        cvtt(v) as u64
    } else {
        (cvtt(v - TWO63) as u64) ^ (1 << 63)
    }
}

/// The point a score stands for: the centre of its cell, clamped to the limits (Redis's
/// `decodeGeohash`).
pub fn decode_score(score: f64) -> (f64, f64) {
    let hash = Hash {
        bits: c_to_u64(score),
        step: STEP_MAX,
    };
    let area = decode(hash).unwrap_or(Area {
        longitude: WGS84_LONG,
        latitude: WGS84_LAT,
    });
    let long = ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (long, lat)
}

/// The standard 11-character geohash of a stored point (GEOHASH): re-encoded over latitudes
/// -90..90, the last character always `0` as only 52 bits exist.
pub fn standard_string(long: f64, lat: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let hash = encode(WGS84_LONG, STANDARD_LAT, long, lat, STEP_MAX);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        let idx = (hash.bits >> (52 - (i + 1) * 5)) & 0x1f;
        *c = ALPHABET[idx as usize];
    }
    out
}

fn move_x(hash: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let mut x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let y = hash.bits & 0x5555555555555555;
    let shift = 64 - u32::from(hash.step) * 2;
    let zz = 0x5555555555555555u64 >> shift;
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x = (x | zz).wrapping_sub(zz + 1);
    }
    x &= 0xaaaaaaaaaaaaaaaau64 >> shift;
    hash.bits = x | y;
}

fn move_y(hash: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let mut y = hash.bits & 0x5555555555555555;
    let shift = 64 - u32::from(hash.step) * 2;
    let zz = 0xaaaaaaaaaaaaaaaau64 >> shift;
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y = (y | zz).wrapping_sub(zz + 1);
    }
    y &= 0x5555555555555555u64 >> shift;
    hash.bits = x | y;
}

/// The eight neighbours, in the order Redis scans them: north, south, east, west,
/// north-east, north-west, south-east, south-west.
fn neighbours(hash: Hash) -> [Hash; 8] {
    const MOVES: [(i8, i8); 8] = [
        (0, 1),
        (0, -1),
        (1, 0),
        (-1, 0),
        (1, 1),
        (-1, 1),
        (1, -1),
        (-1, -1),
    ];
    MOVES.map(|(dx, dy)| {
        let mut h = hash;
        move_x(&mut h, dx);
        move_y(&mut h, dy);
        h
    })
}

fn deg_rad(ang: f64) -> f64 {
    ang * D_R
}

fn rad_deg(ang: f64) -> f64 {
    ang / D_R
}

/// Distance along a meridian.
fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// The haversine great-circle distance in meters (Redis's `geohashGetDistance`).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let v = ((deg_rad(lon2) - deg_rad(lon1)) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// The area of a search, sizes in the unit `conversion` turns into meters.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// A search: its centre, shape and unit (meters per unit).
#[derive(Debug, Clone, Copy)]
pub struct Search {
    pub long: f64,
    pub lat: f64,
    pub shape: Shape,
    pub conversion: f64,
}

impl Search {
    /// The distance in meters from the centre to a point inside the shape, `None` outside.
    pub fn distance_within(&self, long: f64, lat: f64) -> Option<f64> {
        match self.shape {
            Shape::Radius(r) => {
                let limit = r * self.conversion;
                // A great circle is never shorter than the meridian arc between the two
                // latitudes, so a point that far in latitude alone is outside: it is dropped
                // before the trigonometry (most of a search's cost). The margin, far above
                // rounding, leaves every borderline point to the exact formula.
                if lat_distance(lat, self.lat) > limit * (1.0 + 1e-9) + 1e-3 {
                    return None;
                }
                let d = distance(self.long, self.lat, long, lat);
                (d <= limit).then_some(d)
            }
            Shape::Box { width, height } => {
                let (w, h) = (width * self.conversion, height * self.conversion);
                if lat_distance(lat, self.lat) > h / 2.0
                    || distance(long, lat, self.long, lat) > w / 2.0
                {
                    return None;
                }
                Some(distance(self.long, self.lat, long, lat))
            }
        }
    }

    /// Min/max longitude and latitude around the centre that the shape can reach.
    fn bounding_box(&self) -> [f64; 4] {
        let (height, width) = match self.shape {
            Shape::Radius(r) => (self.conversion * r, self.conversion * r),
            Shape::Box { width, height } => (
                self.conversion * (height / 2.0),
                self.conversion * (width / 2.0),
            ),
        };
        let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
        let long_delta_top =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(self.lat + lat_delta).cos());
        let long_delta_bottom =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(self.lat - lat_delta).cos());
        // Parallels shrink towards the pole: the wider edge is the one nearer the equator.
        let long_delta = if self.lat < 0.0 {
            long_delta_bottom
        } else {
            long_delta_top
        };
        [
            self.long - long_delta,
            self.lat - lat_delta,
            self.long + long_delta,
            self.lat + lat_delta,
        ]
    }

    /// The cells to scan, in Redis's order (centre, then [`neighbours`]'s order); `None` for
    /// a cell the search cannot reach.
    pub fn cells(&self) -> [Option<Hash>; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounding_box();
        let radius_meters = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        } * self.conversion;
        let mut steps = estimate_steps(radius_meters, self.lat);
        let mut hash = encode(WGS84_LONG, WGS84_LAT, self.long, self.lat, steps);
        let mut around = neighbours(hash);
        // A centre near its cell's edge may need a coarser grid for the neighbours to cover
        // the whole area.
        let reaches = |n: &[Hash; 8]| -> Option<bool> {
            let (north, south) = (decode(n[0])?, decode(n[1])?);
            let (east, west) = (decode(n[2])?, decode(n[3])?);
            Some(
                north.latitude.max < max_lat
                    || south.latitude.min > min_lat
                    || east.longitude.max < max_lon
                    || west.longitude.min > min_lon,
            )
        };
        if steps > 1 && reaches(&around).unwrap_or(false) {
            steps -= 1;
            hash = encode(WGS84_LONG, WGS84_LAT, self.long, self.lat, steps);
            around = neighbours(hash);
        }
        let mut cells = [Some(hash); 9];
        for (c, n) in cells[1..].iter_mut().zip(around) {
            *c = Some(n);
        }
        if steps >= 2
            && let Some(area) = decode(hash)
        {
            // Indices into `cells`: 1 N, 2 S, 3 E, 4 W, 5 NE, 6 NW, 7 SE, 8 SW.
            let mut drop = |ids: [usize; 3]| ids.iter().for_each(|&i| cells[i] = None);
            if area.latitude.min < min_lat {
                drop([2, 8, 7]);
            }
            if area.latitude.max > max_lat {
                drop([1, 5, 6]);
            }
            if area.longitude.min < min_lon {
                drop([4, 8, 6]);
            }
            if area.longitude.max > max_lon {
                drop([3, 7, 5]);
            }
        }
        cells
    }
}

/// The precision (bits per coordinate) of the cells for a search of this radius.
fn estimate_steps(mut range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    // Wider cells towards the poles, where meridians converge.
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// The score interval `[min, max)` holding every point of a cell.
pub fn score_range(hash: Hash) -> (u64, u64) {
    let min = align52(hash);
    let max = align52(Hash {
        bits: hash.bits + 1,
        step: hash.step,
    });
    (min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_and_points_match_redis() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo" 15.087269 37.502669 "Catania" in Redis
        // 7.0: ZSCORE gives these scores, GEOPOS these points, GEODIST 166274.1516 m.
        assert_eq!(score(13.361389, 38.115556), 3479099956230698);
        assert_eq!(score(15.087269, 37.502669), 3479447370796909);
        let (lon, lat) = decode_score(3479099956230698.0);
        assert_eq!((lon, lat), (13.361389338970184, 38.1155563954963));
        let (lon2, lat2) = decode_score(3479447370796909.0);
        let d = distance(lon, lat, lon2, lat2);
        assert_eq!(format!("{d:.4}"), "166274.1516");
        assert_eq!(&standard_string(lon, lat), b"sqc8b49rny0");
    }

    #[test]
    fn neighbours_surround_a_cell() {
        let h = encode(WGS84_LONG, WGS84_LAT, 13.36, 38.11, 10);
        let c = decode(h).expect("cell");
        let n = neighbours(h).map(|n| decode(n).expect("cell"));
        assert_eq!(n[0].latitude.min, c.latitude.max);
        assert_eq!(n[1].latitude.max, c.latitude.min);
        assert_eq!(n[2].longitude.min, c.longitude.max);
        assert_eq!(n[3].longitude.max, c.longitude.min);
    }

    #[test]
    fn the_latitude_shortcut_never_drops_a_point_inside() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |lo: f64, hi: f64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            lo + (seed >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
        };
        for i in 0..100_000 {
            let (lon, lat) = (next(-180.0, 180.0), next(LAT_MIN, LAT_MAX));
            // Half the pairs far apart, half within meters of each other.
            let spread = if i % 2 == 0 { 360.0 } else { 1e-4 };
            let plon = (lon + next(-spread, spread)).clamp(LONG_MIN, LONG_MAX);
            let plat = (lat + next(-spread, spread) / 2.0).clamp(LAT_MIN, LAT_MAX);
            // A radius exactly at the point's distance: the point must be found.
            let d = distance(lon, lat, plon, plat);
            let s = Search {
                long: lon,
                lat,
                shape: Shape::Radius(d),
                conversion: 1.0,
            };
            assert_eq!(s.distance_within(plon, plat), Some(d));
        }
    }

    #[test]
    fn limits_and_odd_scores() {
        assert!(valid(180.0, 85.05112878) && !valid(180.1, 0.0) && !valid(0.0, -85.1));
        // A negative score wraps as in C and decodes to a clamped point.
        let (lon, lat) = decode_score(-1.0);
        assert!(valid(lon, lat));
        assert_eq!(estimate_steps(0.0, 0.0), 26);
        assert_eq!(estimate_steps(1e9, 0.0), 1);
    }
}
