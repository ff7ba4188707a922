module.exports = () => "hello from behind mod_bbauth";
