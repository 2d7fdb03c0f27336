//! The languages the shop speaks.

crate::text_enum! {
    /// A customer-facing language. `fa` is written right to left.
    pub enum Language {
        En => "en",
        Fa => "fa",
        Ru => "ru",
    }
}

impl Language {
    /// Picks a language from Telegram's optional IETF tag (`fa`, `fa-IR`, `ru-RU`, `en-US`…).
    pub fn from_ietf_tag(tag: Option<&str>, fallback: Language) -> Language {
        let Some(tag) = tag else { return fallback };
        let primary = tag.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        primary.parse().unwrap_or(fallback)
    }

    pub fn is_rtl(self) -> bool {
        matches!(self, Language::Fa)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ietf_tags_map_to_languages_with_fallback() {
        assert_eq!(Language::from_ietf_tag(Some("fa-IR"), Language::En), Language::Fa);
        assert_eq!(Language::from_ietf_tag(Some("RU"), Language::En), Language::Ru);
        assert_eq!(Language::from_ietf_tag(Some("de-DE"), Language::En), Language::En);
        assert_eq!(Language::from_ietf_tag(None, Language::Fa), Language::Fa);
        assert_eq!(Language::from_ietf_tag(Some(""), Language::Ru), Language::Ru);
    }
}
