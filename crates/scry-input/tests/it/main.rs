//! Integration tests of the input readers: real files on disk, every input format, with
//! malformed pieces mixed in.

mod input;
