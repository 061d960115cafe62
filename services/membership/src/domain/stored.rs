//! The states and kinds our tables keep in ENUM columns, one Rust enum each. The rows are read
//! with the column as text (`CAST(… AS CHAR)`) and decoded through `TryFrom<String>`: a value
//! this code does not know is a decode error, never read as some default.

/// Implements `as_str` and `TryFrom<String>` for enums that derive strum's `EnumString` and
/// `IntoStaticStr` with the column's spelling.
macro_rules! stored_enum {
    ($($name:ident),+ $(,)?) => {$(
        impl $name {
            /// The value as the column stores it.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }

        impl TryFrom<String> for $name {
            type Error = strum::ParseError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                value.parse()
            }
        }
    )+};
}

pub(crate) use stored_enum;
