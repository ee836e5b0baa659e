//! Integration tests of the sources: the Criminal IP client against a real `scry sandbox` server
//! on loopback, checked from the sandbox's request log, and decoding of recorded answer shapes.

mod criminalip;
mod decode;
