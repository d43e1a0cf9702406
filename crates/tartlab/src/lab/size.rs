//! Sizes as people write them: a whole number in the key's own unit (MiB for `memory`, GB
//! for `disk`, as tart counts them), or a number with a unit: `4GiB`, `4096MiB`, `50GB`,
//! `1TB`, and decimals of them (`2.5GB`, 2560 MiB) that come to a whole number of the key's
//! unit. Units count in 1024s (1 GB = 1024 MB), as tart and most VM tools do; `GB` and
//! `GiB` mean the same here.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Memory, in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mebibytes(pub u32);

/// Disk, in GB (1024 MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gigabytes(pub u32);

const MIB_PER: [(&str, u64); 9] = [
    ("m", 1),
    ("mb", 1),
    ("mib", 1),
    ("g", 1024),
    ("gb", 1024),
    ("gib", 1024),
    ("t", 1024 * 1024),
    ("tb", 1024 * 1024),
    ("tib", 1024 * 1024),
];

/// What is wrong with a size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeError {
    /// It does not begin with a number: not a size at all (the message says what a size is).
    NotANumber,
    /// A unit tartlab does not know, lowercased as it was compared.
    UnknownUnit(String),
    TooLarge,
    /// Not a whole number of the key's unit (`1500MiB` for a disk in GB).
    NotWhole {
        unit: String,
    },
}

impl std::fmt::Display for SizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SizeError::NotANumber => f.write_str("it is not a number"),
            SizeError::UnknownUnit(unit) => write!(
                f,
                "the unit `{unit}` is not one tartlab knows (MiB, GiB, TiB, MB, GB, TB)"
            ),
            SizeError::TooLarge => f.write_str("it is too large"),
            SizeError::NotWhole { unit } => write!(f, "it is not a whole number of {unit}"),
        }
    }
}

/// A size in units of `unit` MiB (1 for MiB, 1024 for GB), from a number in that unit or a
/// text with a unit; else what is wrong with it. The number may be a decimal (`2.5GB` is
/// 2560 MiB) when the size comes to a whole number of the key's unit.
pub fn parse(text: &str, unit: u64, unit_name: &str) -> Result<u32, SizeError> {
    let text = text.trim();
    let whole = text.chars().take_while(char::is_ascii_digit).count();
    let fraction = match text[whole..].strip_prefix('.') {
        Some(rest) => rest.chars().take_while(char::is_ascii_digit).count(),
        None => 0,
    };
    let written = if fraction > 0 {
        whole + 1 + fraction
    } else {
        whole
    };
    let (number, suffix) = text.split_at(written);
    let suffix = suffix.trim().to_ascii_lowercase();
    if whole == 0 {
        return Err(SizeError::NotANumber);
    }
    // The number as a whole count of 10^-fraction (2.5 is 25 tenths), exactly.
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let scaled: u64 = digits.parse().map_err(|_| SizeError::TooLarge)?;
    let scale = u32::try_from(fraction)
        .ok()
        .and_then(|f| 10u64.checked_pow(f))
        .ok_or(SizeError::TooLarge)?;
    let mib_per = if suffix.is_empty() {
        unit
    } else {
        MIB_PER
            .iter()
            .find(|(name, _)| *name == suffix)
            .map(|(_, n)| *n)
            .ok_or(SizeError::UnknownUnit(suffix))?
    };
    let scaled_mib = scaled.checked_mul(mib_per).ok_or(SizeError::TooLarge)?;
    if scaled_mib % scale != 0 {
        return Err(SizeError::NotWhole {
            unit: unit_name.to_string(),
        });
    }
    let mib = scaled_mib / scale;
    if mib % unit != 0 {
        return Err(SizeError::NotWhole {
            unit: unit_name.to_string(),
        });
    }
    u32::try_from(mib / unit).map_err(|_| SizeError::TooLarge)
}

/// A number or a text, as the lab file gives a size.
#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Number(u64),
    Text(String),
}

fn read<'de, D: Deserializer<'de>>(d: D, unit: u64, name: &str) -> Result<u32, D::Error> {
    match Written::deserialize(d)? {
        Written::Number(n) => u32::try_from(n)
            .map_err(|_| serde::de::Error::custom(format!("{n} {name} is too large"))),
        Written::Text(t) => parse(&t, unit, name).map_err(|why| match why {
            SizeError::NotANumber => serde::de::Error::custom(format!("`{t}` is not a size")),
            why => serde::de::Error::custom(format!("`{t}` is not a size: {why}")),
        }),
    }
}

impl<'de> Deserialize<'de> for Mebibytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, 1, "MiB").map(Mebibytes)
    }
}

impl<'de> Deserialize<'de> for Gigabytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, 1024, "GB").map(Gigabytes)
    }
}

impl Serialize for Mebibytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl Serialize for Gigabytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

/// The schema of a size: a whole number, or a text of a number and a unit. `x-size` names
/// the unit for tartlab's own check (`structure.rs`), which parses the text as `up` will.
fn size_schema(unit: &str, example: &str) -> Schema {
    json_schema!({
        "anyOf": [
            { "type": "integer", "minimum": 1 },
            { "type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*([MmGgTt]([Ii]?[Bb])?)?\\s*$" }
        ],
        "x-size": unit,
        "x-expects": format!("a whole number of {unit}, or a size with a unit (e.g. {example})"),
    })
}

impl JsonSchema for Mebibytes {
    fn schema_name() -> Cow<'static, str> {
        "Mebibytes".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        size_schema("MiB", "4096 or 4GiB")
    }
}

impl JsonSchema for Gigabytes {
    fn schema_name() -> Cow<'static, str> {
        "Gigabytes".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        size_schema("GB", "50 or 50GB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_units() {
        let mib = |t: &str| parse(t, 1, "MiB");
        let gb = |t: &str| parse(t, 1024, "GB");
        assert_eq!(mib("4096"), Ok(4096));
        assert_eq!(mib("4GiB"), Ok(4096));
        assert_eq!(mib("4 GB"), Ok(4096));
        assert_eq!(mib("512M"), Ok(512));
        assert_eq!(gb("50GB"), Ok(50));
        assert_eq!(gb("1TiB"), Ok(1024));
        assert_eq!(gb("2048MiB"), Ok(2));
        assert_eq!(
            gb("1500MB").unwrap_err().to_string(),
            "it is not a whole number of GB"
        );
        assert_eq!(mib("2 gigs"), Err(SizeError::UnknownUnit("gigs".into())));
        assert!(mib("2 gigs")
            .unwrap_err()
            .to_string()
            .contains("the unit `gigs`"));
        assert_eq!(mib("lots"), Err(SizeError::NotANumber));
        assert_eq!(mib("2.5GB"), Ok(2560));
        assert_eq!(mib("2.50 GiB"), Ok(2560));
        assert_eq!(gb("0.5TB"), Ok(512));
        assert_eq!(mib(".5GB"), Err(SizeError::NotANumber));
        assert_eq!(
            mib("2.3GB").unwrap_err().to_string(),
            "it is not a whole number of MiB"
        );
        assert_eq!(
            gb("20.5").unwrap_err().to_string(),
            "it is not a whole number of GB"
        );
        assert_eq!(mib("1.000000000000000000001GB"), Err(SizeError::TooLarge));
        assert_eq!(mib("99999999TB"), Err(SizeError::TooLarge));
    }
}
