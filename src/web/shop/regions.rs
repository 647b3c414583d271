//! The places the checkout form offers: India's states and union territories (ISO 3166-2:IN
//! codes, which decide GST: the seller's own state CGST + SGST or UTGST, another IGST) and
//! the countries a shop commonly ships to (any other ISO 3166-1 code is taken too).

/// India's states and union territories: code, name.
pub const INDIAN_STATES: &[(&str, &str)] = &[
    ("AN", "Andaman and Nicobar Islands"),
    ("AP", "Andhra Pradesh"),
    ("AR", "Arunachal Pradesh"),
    ("AS", "Assam"),
    ("BR", "Bihar"),
    ("CH", "Chandigarh"),
    ("CG", "Chhattisgarh"),
    ("DH", "Dadra and Nagar Haveli and Daman and Diu"),
    ("DL", "Delhi"),
    ("GA", "Goa"),
    ("GJ", "Gujarat"),
    ("HR", "Haryana"),
    ("HP", "Himachal Pradesh"),
    ("JK", "Jammu and Kashmir"),
    ("JH", "Jharkhand"),
    ("KA", "Karnataka"),
    ("KL", "Kerala"),
    ("LA", "Ladakh"),
    ("LD", "Lakshadweep"),
    ("MP", "Madhya Pradesh"),
    ("MH", "Maharashtra"),
    ("MN", "Manipur"),
    ("ML", "Meghalaya"),
    ("MZ", "Mizoram"),
    ("NL", "Nagaland"),
    ("OD", "Odisha"),
    ("PY", "Puducherry"),
    ("PB", "Punjab"),
    ("RJ", "Rajasthan"),
    ("SK", "Sikkim"),
    ("TN", "Tamil Nadu"),
    ("TS", "Telangana"),
    ("TR", "Tripura"),
    ("UP", "Uttar Pradesh"),
    ("UK", "Uttarakhand"),
    ("WB", "West Bengal"),
];

/// Countries offered in the picker: code, name (India first).
pub const COUNTRIES: &[(&str, &str)] = &[
    ("IN", "India"),
    ("AE", "United Arab Emirates"),
    ("AU", "Australia"),
    ("BD", "Bangladesh"),
    ("CA", "Canada"),
    ("DE", "Germany"),
    ("FR", "France"),
    ("GB", "United Kingdom"),
    ("JP", "Japan"),
    ("LK", "Sri Lanka"),
    ("NP", "Nepal"),
    ("SG", "Singapore"),
    ("US", "United States"),
];

/// Is `code` one of the pickers' values?
pub fn is_indian_state(code: &str) -> bool {
    INDIAN_STATES.iter().any(|(c, _)| *c == code)
}

pub fn is_country(code: &str) -> bool {
    COUNTRIES.iter().any(|(c, _)| *c == code)
}
