//! Access control: users with Redis 7.0's rule grammar (passwords, commands and
//! categories, key and channel patterns, selectors), the permission check the executor makes
//! before every command, the ACL LOG, and the ACL file. The ACL command itself lives with the
//! other commands (`cmd::acl`); this module holds no sockets and no clients.

pub mod categories;
pub mod file;
pub mod key_access;
pub mod log;
pub mod request;
pub mod selector;
pub mod universe;
pub mod user;
pub mod users;

pub use selector::{Denied, Request, Selector};
pub use user::User;
pub use users::Users;
