//! Who may call the admin API.
